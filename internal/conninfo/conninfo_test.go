package conninfo_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgward/pgward/internal/conninfo"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in                       string
		host, port, user, dbname string
		password, sslmode        string
	}{
		{in: "host=/tmp port=5433 user=postgres dbname=shop", host: "/tmp", port: "5433", user: "postgres", dbname: "shop"},
		{in: "host = db1 password='x y' dbname = 'my db'", host: "db1", password: "x y", dbname: "my db"},
		{in: `host=db1 password='a\'b c\\d'`, host: "db1", password: `a'b c\d`},
		{in: "postgres://app:s3cret@db1:5432/crm?sslmode=disable", host: "db1", port: "5432", user: "app", password: "s3cret", dbname: "crm", sslmode: "disable"},
		{in: "postgresql://db1,db2:6000/x", host: "db1,db2", port: ",6000", dbname: "x"},
	}
	for _, tt := range tests {
		p, err := conninfo.Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		for key, want := range map[string]string{"host": tt.host, "port": tt.port, "user": tt.user, "dbname": tt.dbname, "password": tt.password, "sslmode": tt.sslmode} {
			if got := p.Get(key); got != want {
				t.Errorf("Parse(%q).Get(%q) = %q, want %q", tt.in, key, got, want)
			}
		}
	}
}

func TestCommandKeepsPasswordOffTheCommandLine(t *testing.T) {
	p, err := conninfo.Parse("postgres://app:s3cret@db1:5432/crm?sslmode=disable&application_name=x")
	if err != nil {
		t.Fatal(err)
	}
	cs, env := p.With("dbname", "it's/odd").Command()
	if strings.Contains(cs, "s3cret") {
		t.Fatalf("password in command line: %s", cs)
	}
	if len(env) != 1 || env[0] != "PGPASSWORD=s3cret" {
		t.Fatalf("env = %q", env)
	}
	// The written string must read back, through libpq's rules, to the
	// same parameters.
	cfg, err := pgconn.ParseConfig(cs)
	if err != nil {
		t.Fatalf("ParseConfig(%s): %v", cs, err)
	}
	if cfg.Database != "it's/odd" || cfg.Host != "db1" || cfg.Port != 5432 || cfg.User != "app" || cfg.RuntimeParams["application_name"] != "x" {
		t.Fatalf("round trip: %+v", cfg)
	}
}

func TestParseErrorHidesTheString(t *testing.T) {
	_, err := conninfo.Parse("host=db1 password=s3cret port=notaport")
	if err == nil {
		t.Fatal("no error for a bad port")
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error shows the password: %v", err)
	}
}

func TestHasPassword(t *testing.T) {
	for in, want := range map[string]bool{
		"":                                           false,
		"host=/tmp user=postgres":                    false,
		"host=db1 password=s3cret":                   true,
		"host=db1 password = 's3 cret'":              true,
		`host=db1 password='a\'b'`:                   true,
		"host=db1 PASSWORD=s3cret":                   true, // libpq would refuse it; argv still shows it
		"host=db1 sslpassword=keypass":               true,
		"host=db1 password=''":                       false, // nothing to hide
		"host=db1 passfile=/etc/pgward/pgpass":       false,
		"host=db1 options='-c search_path=password'": false,
		"postgres://app@db1/crm":                     false,
		"postgres://app:s3cret@db1/crm":              true,
		"postgresql://app:s3cret@db1,db2:6000/crm":   true,
		"postgres://app:@db1/crm":                    false,
		"postgres://db1/crm?password=s3cret":         true,
		"postgres://db1/crm?sslmode=disable":         false,
		// Unreadable strings: counted as holding a password when one may be there.
		"host=db1 password='s3cret":      true, // unterminated quote
		"postgres://app:s3%zzcret@db1/x": true, // bad escape
		"host=db1 port":                  false,
		"host=db1\npassword=s3cret":      true,
	} {
		if got := conninfo.HasPassword(in); got != want {
			t.Errorf("HasPassword(%q) = %v, want %v", in, got, want)
		}
	}
}
