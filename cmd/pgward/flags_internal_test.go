package main

// Tests of what flags, environment variables and the config file accept
// (issue 11): no password on a command line, no credentials in
// --s3-endpoint, YAML values of the kind their key takes, errors that say
// what a value must look like, and `backup delete ID --force`.

import (
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/catalog"
)

const pwSecret = "s3cret-PW"

// Every flag that takes a libpq connection string refuses a password on
// the command line, in keyword and in URL form, naming where a password
// may go instead and never showing it.
func TestConnectionPasswordOnCommandLineRefused(t *testing.T) {
	isolate(t)
	_, repoURL := fileRepo(t)
	_, recipient := generateKey(t, t.TempDir(), "key")
	global := []string{"--repo", repoURL, "--recipient", recipient}
	forms := map[string]string{
		"keyword":          "host=/tmp port=5432 user=app password=" + pwSecret,
		"quoted keyword":   "host=/tmp password = '" + pwSecret + " x'",
		"URL":              "postgres://app:" + pwSecret + "@db1:5432/postgres",
		"URL query":        "postgresql://db1/postgres?sslmode=disable&password=" + pwSecret,
		"unreadable":       "host=/tmp password='" + pwSecret, // unterminated quote
		"newline":          "host=/tmp\npassword=" + pwSecret,
		"ssl key password": "host=/tmp sslpassword=" + pwSecret,
	}
	for _, tc := range []struct {
		name     string
		args     func(conn string) []string
		flag     string
		env, key string // where the whole string may go instead; "" for none
	}{
		{"stream --source", func(s string) []string { return append(global, "stream", "--listen", "", "--source", s) }, "--source", "PGWARD_SOURCE", "source:"},
		{"stream --backup-source", func(s string) []string { return append(global, "stream", "--listen", "", "--backup-source", s) }, "--backup-source", "PGWARD_BACKUP_SOURCE", "backup-source:"},
		{"stream --dump-source", func(s string) []string { return append(global, "stream", "--listen", "", "--dump-source", s) }, "--dump-source", "PGWARD_DUMP_SOURCE", "dump-source:"},
		{"stream --drill-target", func(s string) []string { return append(global, "stream", "--listen", "", "--drill-target", s) }, "--drill-target", "PGWARD_DRILL_TARGET", "drill-target:"},
		{"backup --source", func(s string) []string { return append(global, "backup", "--source", s) }, "--source", "PGWARD_BACKUP_SOURCE", "backup-source:"},
		{"dump --source", func(s string) []string { return append(global, "dump", "--source", s) }, "--source", "PGWARD_DUMP_SOURCE", "dump-source:"},
		{"dump restore --into", func(s string) []string { return append(global, "dump", "restore", "--database", "shop", "--into", s) }, "--into", "", ""},
		{"dump drill --drill-target", func(s string) []string { return append(global, "dump", "drill", "--drill-target", s) }, "--drill-target", "PGWARD_DRILL_TARGET", "drill-target:"},
	} {
		for form, conn := range forms {
			t.Run(tc.name+"/"+form, func(t *testing.T) {
				want := []string{tc.flag + " holds a password", "ps", "~/.pgpass", "PGPASSFILE", "PGPASSWORD"}
				if tc.env != "" {
					want = append(want, tc.env, tc.key, "--config file")
				}
				pgward(t, tc.args(conn)...).check(t, exitError, want, []string{pwSecret})
			})
		}
	}
	// Without a password the same flags are accepted (and fail later, for
	// want of a server, with another message).
	r := pgward(t, append(global, "stream", "--listen", "", "--source", "host=/x port=notaport")...)
	r.check(t, exitError, []string{"--source", "invalid port"}, []string{"holds a password"})
	// Hostile values: quotes, backslashes and newlines are libpq's to read;
	// a huge string is not echoed whole.
	for _, tc := range []struct{ conn, want string }{
		{"host='/tmp/my dir' port=notaport", "invalid port"},
		{`host=/tmp application_name='it\'s a "name"' port=x`, "invalid port"},
		{"host=/tmp\nport=x", "invalid port"},
		{"host=/tmp port=1 " + strings.Repeat("x", 100000), "(100017 bytes, not shown)"},
	} {
		r := pgward(t, append(global, "backup", "--source", tc.conn)...)
		r.check(t, exitError, []string{"--source", tc.want}, []string{"holds a password"})
		if len(r.stderr) > 1000 {
			t.Errorf("a %d-byte message for a %d-byte --source", len(r.stderr), len(tc.conn))
		}
	}
}

// The environment variable of the flag and the config file may hold the
// password: neither shows in ps. Errors about such a string still hide it.
func TestConnectionPasswordFromEnvironmentOrConfig(t *testing.T) {
	_, repoURL := fileRepo(t)
	_, recipient := generateKey(t, t.TempDir(), "key")
	// A bad port: the command stops at parsing, after the password check.
	bad := "host=/nonexistent port=notaport password = '" + pwSecret + "'"
	refused := []string{"holds a password (not shown): refused", pwSecret}

	t.Run("environment", func(t *testing.T) {
		isolate(t)
		t.Setenv("PGWARD_BACKUP_SOURCE", bad)
		pgward(t, "--repo", repoURL, "--recipient", recipient, "backup").
			check(t, exitError, []string{"--source: invalid connection string (not shown: it holds a password)"}, refused)
	})
	t.Run("command line repeating the environment", func(t *testing.T) {
		isolate(t)
		t.Setenv("PGWARD_SOURCE", bad)
		pgward(t, "--repo", repoURL, "--recipient", recipient, "stream", "--listen", "", "--source", bad).
			check(t, exitError, []string{"--source: invalid connection string"}, refused)
	})
	t.Run("command line overriding the environment", func(t *testing.T) {
		isolate(t)
		t.Setenv("PGWARD_SOURCE", "host=/tmp")
		pgward(t, "--repo", repoURL, "--recipient", recipient, "stream", "--listen", "", "--source", bad).
			check(t, exitError, []string{"--source holds a password"}, []string{pwSecret})
	})
	for key, args := range map[string][]string{
		"source":        {"stream", "--listen", ""},
		"backup-source": {"backup"},
		"dump-source":   {"dump"},
	} {
		t.Run("config file "+key, func(t *testing.T) {
			isolate(t)
			cfg := filepath.Join(t.TempDir(), "pgward.yaml")
			writeFile(t, cfg, []byte("repo: "+repoURL+"\nrecipient: "+recipient+"\n"+key+": \""+bad+"\"\n"))
			r := pgward(t, append([]string{"--config", cfg}, args...)...)
			if key == "dump-source" {
				// dump hands the string to pg_dump: conninfo's error.
				r.check(t, exitError, []string{"invalid connection string (not shown: it may hold a password)"}, refused)
				return
			}
			r.check(t, exitError, []string{"--source: invalid connection string (not shown: it holds a password)"}, refused)
		})
	}
	t.Run("a flag beats the config file", func(t *testing.T) {
		isolate(t)
		cfg := filepath.Join(t.TempDir(), "pgward.yaml")
		writeFile(t, cfg, []byte("repo: "+repoURL+"\nrecipient: "+recipient+"\nbackup-source: \""+bad+"\"\n"))
		pgward(t, "--config", cfg, "backup", "--source", "host=/x port=alsobad").
			check(t, exitError, []string{"--source: cannot parse", "alsobad"}, refused)
	})
}

// Credentials in --s3-endpoint are refused, from a flag, the environment
// or the config file, and never echoed.
func TestS3EndpointCredentialsRefused(t *testing.T) {
	const secret = "SECRETkey123"
	for _, tc := range []struct {
		endpoint string
		want     []string
	}{
		{"http://AKIA:" + secret + "@minio.local:9000", []string{`--s3-endpoint "http://minio.local:9000" holds credentials`, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}},
		{"https://AKIA:" + secret + "@minio.local", []string{"holds credentials", "AWS_SECRET_ACCESS_KEY"}},
		{"AKIA:" + secret + "@minio.local:9000", []string{"--s3-endpoint holds credentials (not shown)", "AWS_ACCESS_KEY_ID"}},
		{"http://AKIA:" + secret + "%zz@minio.local", []string{"not a valid URL (not shown"}},
		{"https://minio.local/x?X-Amz-Credential=" + secret, []string{`"https://minio.local" has a path or query`, "--repo s3://bucket/prefix"}},
		{"minio.local:9000/" + secret, []string{`"minio.local:9000" is not host[:port]`}},
		{"/" + secret, []string{`"" is not host[:port]`}},
		{"ftp://minio.local", []string{`scheme "ftp": want http or https`}},
		{"http://", []string{"names no host"}},
		{"minio local " + secret, []string{"spaces or control characters (not shown)"}},
		{"minio.local\n" + secret, []string{"spaces or control characters (not shown)"}},
	} {
		for _, via := range []string{"flag", "environment", "config file"} {
			t.Run(via+"/"+tc.endpoint, func(t *testing.T) {
				isolate(t)
				args := []string{"--repo", "s3://bucket/prefix"}
				switch via {
				case "flag":
					args = append(args, "--s3-endpoint", tc.endpoint)
				case "environment":
					t.Setenv("PGWARD_S3_ENDPOINT", tc.endpoint)
				case "config file":
					cfg := filepath.Join(t.TempDir(), "pgward.yaml")
					y, _ := json.Marshal(tc.endpoint) // a JSON string is a YAML string
					writeFile(t, cfg, []byte("s3-endpoint: "+string(y)+"\n"))
					args = append(args, "--config", cfg)
				}
				if strings.Contains(tc.endpoint, secret) {
					pgward(t, append(args, "backup", "list")...).check(t, exitError, tc.want, []string{secret})
				} else {
					pgward(t, append(args, "backup", "list")...).check(t, exitError, tc.want, nil)
				}
			})
		}
	}
	// A plain endpoint is accepted (and the list fails only for want of a
	// server, naming the host).
	for _, ok := range []string{"minio.local:9000", "http://127.0.0.1:1", "https://s3.example.com/"} {
		if err := checkS3Endpoint(ok); err != nil {
			t.Errorf("checkS3Endpoint(%q): %v", ok, err)
		}
	}
}

// A YAML value must be what its key takes: maps, and lists for keys that
// are not lists, are refused rather than turned into "map[a:b]".
func TestConfigFileValueKinds(t *testing.T) {
	_, r1 := generateKey(t, t.TempDir(), "k1")
	_, r2 := generateKey(t, t.TempDir(), "k2")
	for _, tc := range []struct {
		name, yaml string
		code       int
		want       []string
		wantNot    []string
	}{
		{"map for a string", "repo: {a: b}\n", exitError, []string{"config file", "key repo: want a string, got a map"}, []string{"map["}},
		{"list for a string", "repo:\n  - file:///a\n  - file:///b\n", exitError, []string{"key repo: want a string, got a list"}, nil},
		{"map for a list key", "recipient: {a: b}\n", exitError, []string{"key recipient: want a string or a list of strings, got a map"}, nil},
		{"list in a list", "recipient: [" + r1 + ", [" + r2 + "]]\n", exitError, []string{"key recipient: item 2: want a string, got a list"}, nil},
		{"trusted signers are a list", "repo: yaml://x\nno-encryption: true\ntrusted-signer: [pgwsig1a, pgwsig1b]\n", exitError, []string{`unknown repository scheme "yaml"`}, nil},
		{"bad boolean", "repo: yaml://x\nno-encryption: maybe\n", exitError, []string{`key no-encryption: want true or false, got "maybe"`}, []string{"parse error"}},
		{"list for a boolean", "repo: yaml://x\ns3-insecure: [true]\n", exitError, []string{"key s3-insecure: want true or false, got a list"}, nil},
		{"allow-unsigned is a boolean", "repo: yaml://x\nno-encryption: true\nallow-unsigned: sometimes\n", exitError, []string{"key allow-unsigned: want true or false"}, nil},
		{"quoted boolean", "repo: yaml://x\nno-encryption: \"true\"\n", exitError, []string{`unknown repository scheme "yaml"`}, nil},
		{"YAML 1.1 boolean", "repo: yaml://x\nno-encryption: yes\n", exitError, []string{`unknown repository scheme "yaml"`}, nil},
		{"signing key file is a string", "repo: yaml://x\nno-encryption: true\nsigning-key-file: {path: /x}\n", exitError, []string{"key signing-key-file: want a string, got a map"}, nil},
		{"connection string is a string", "repo: yaml://x\nno-encryption: true\nsource: [host=a]\n", exitError, []string{"key source: want a string, got a list"}, nil},
		{"twice", "repo: yaml://x\nrepo: yaml://y\n", exitError, []string{"key repo: given twice (line 2, first on line 1)"}, nil},
		{"not a mapping", "- repo\n", exitError, []string{"want settings as key: value lines", "got a list"}, nil},
		{"a key that is a map", "{a: b}: c\n", exitError, []string{"a key must be a name"}, nil},
		{"number kept as written", "repo: yaml://x\nno-encryption: true\ncluster: 007\n", exitError, []string{`unknown repository scheme "yaml"`}, nil},
		{"alias", "repo: &r yaml://x\nno-encryption: true\ns3-region: *r\n", exitError, []string{`unknown repository scheme "yaml"`}, nil},
		{"unknown key suggests one", "singing-key-file: x\n", exitError, []string{`unknown key "singing-key-file" (did you mean signing-key-file?)`}, nil},
		{"a command's option in its section", "repo: yaml://x\nno-encryption: true\nwal-push:\n  frob: 1\n", exitError, []string{`(section wal-push): unknown key "frob"`}, nil},
		{"a global in a section", "wal-push:\n  repo: yaml://x\n", exitError, []string{"key repo is a global option"}, nil},
		{"force is never read from the file", "force: true\n", exitError, []string{`unknown key "force"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "pgward.yaml")
			writeFile(t, cfg, []byte(tc.yaml))
			pgward(t, "--config", cfg, "wal-push", filepath.Join(dir, seg3)).check(t, tc.code, tc.want, tc.wantNot)
		})
	}
}

// A value a flag cannot take says which form it wants, whether it came
// from the command line or the environment.
func TestFlagValueErrorsSayWhatToWrite(t *testing.T) {
	isolate(t)
	_, repoURL := fileRepo(t)
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{"env boolean", "PGWARD_DUMP_PAUSE_REPLAY=maybe", []string{"stream"}, `environment variable PGWARD_DUMP_PAUSE_REPLAY (for --dump-pause-replay): want true or false, got "maybe"`},
		{"env number", "PGWARD_KEEP_DAILY=seven", []string{"dump", "prune"}, `environment variable PGWARD_KEEP_DAILY (for --keep-daily): want a whole number, got "seven"`},
		{"flag boolean", "", []string{"backup", "delete", "--force=maybe", "x"}, `--force "maybe": want true or false`},
		{"flag number", "", []string{"dump", "prune", "--keep-weekly", "4w"}, `--keep-weekly "4w": want a whole number`},
		{"flag duration", "", []string{"backup", "delete", "--retention-window", "7days", "x"}, `--retention-window "7days": want a duration such as 90s, 15m, 36h, 7d or 1d12h`},
		{"env duration", "PGWARD_WINDOW=soon", []string{"prune"}, `environment variable PGWARD_WINDOW (for --retention-window): want a duration such as 90s, 15m, 36h, 7d or 1d12h, got "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if k, v, ok := strings.Cut(tc.env, "="); ok {
				t.Setenv(k, v)
			}
			r := pgward(t, append([]string{"--repo", repoURL}, tc.args...)...)
			r.check(t, exitError, []string{tc.want}, []string{"parse error", "Incorrect Usage"})
		})
	}
	// The global flags' errors come out of the App, whose OnUsageError
	// main.go sets; the rewriting itself:
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	c := cli.NewContext(app, nil, nil)
	err := flagUsageError(c, errors.New(`could not parse "maybe" as bool value from environment variable "PGWARD_NO_ENCRYPTION" for flag no-encryption: strconv.ParseBool: parsing "maybe": invalid syntax`), false)
	if want := `environment variable PGWARD_NO_ENCRYPTION (for --no-encryption): want true or false, got "maybe"`; err.Error() != want {
		t.Errorf("flagUsageError = %q, want %q", err, want)
	}
	err = flagUsageError(c, errors.New(`invalid boolean value "maybe" for -s3-insecure: parse error`), false)
	if want := `--s3-insecure "maybe": want true or false`; err.Error() != want {
		t.Errorf("flagUsageError = %q, want %q", err, want)
	}
	err = flagUsageError(c, errors.New("flag provided but not defined: -frob"), false)
	if want := "unknown option --frob for 'pgward' (see 'pgward --help')"; err.Error() != want {
		t.Errorf("flagUsageError = %q, want %q", err, want)
	}
	other := errors.New("something else")
	if err := flagUsageError(c, other, false); err != other {
		t.Errorf("flagUsageError changed %q into %q", other, err)
	}
}

// putBackup stores a finished backup's backup.json, stopped at stop.
func putBackup(t *testing.T, repoDir, id string, stop time.Time) {
	t.Helper()
	putClusterBackup(t, repoDir, catalog.DefaultCluster, id, stop)
}

// The documented `backup delete ID --force` works: it deletes a backup
// retention keeps, and says so; without --force the refusal names it.
func TestBackupDeleteForceAfterID(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	now := time.Now().UTC()
	putBackup(t, dir, "20260101T000000Z", now.Add(-30*24*time.Hour)) // the base of the window's oldest second
	putBackup(t, dir, "20260102T000000Z", now.Add(-time.Hour))       // inside the window
	putBackup(t, dir, "20260103T000000Z", now.Add(-time.Minute))     // inside, pinned
	pgward(t, "--repo", repoURL, "backup", "pin", "20260103T000000Z").check(t, exitOK, nil, nil)

	pgward(t, "--repo", repoURL, "backup", "delete", "20260102T000000Z").
		check(t, exitError, []string{"still needed", "recovery window", "use --force"}, nil)
	pgward(t, "--repo", repoURL, "backup", "delete", "20260103T000000Z").
		check(t, exitError, []string{"still needed (pinned)", "use --force"}, nil)

	for _, args := range [][]string{
		{"backup", "delete", "20260102T000000Z", "--force"},                           // the documented form
		{"backup", "delete", "20260103T000000Z", "--retention-window=24h", "--force"}, // several, with =
		{"backup", "delete", "--force", "20260101T000000Z"},                           // flags first, as before
	} {
		r := pgward(t, append([]string{"--repo", repoURL}, args...)...)
		r.check(t, exitOK, []string{"warning: deleting backup", "as --force says"}, nil)
		id := args[2]
		if id == "--force" {
			id = args[3]
		}
		if !strings.Contains(r.stdout, "backup "+id+" deleted") {
			t.Errorf("%v: stdout %q, want it to say the backup was deleted", args, r.stdout)
		}
	}
	r := pgward(t, "--repo", repoURL, "backup", "list", "--json")
	r.check(t, exitOK, nil, nil)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("after deleting every backup, list = %s", r.stdout)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"delete", "x", "--frob"}, `delete: unknown option "--frob"`},
		{[]string{"delete", "x", "--retention-window"}, "option --retention-window needs a value"},
		{[]string{"delete", "x", "--retention-window", "-1h"}, "retention window -1h0m0s: want at least 1h0m0s"},
		{[]string{"delete", "x", "y", "--force"}, "delete takes one backup id (see 'pgward backup list'), got 2 arguments"},
		{[]string{"delete", "--force"}, "got 0 arguments"},
		{[]string{"delete", "", "--force"}, `invalid backup id ""`},
		{[]string{"delete", "../x", "--force"}, `invalid backup id "../x"`},
		{[]string{"delete", strings.Repeat("x", 5000), "--force"}, "invalid backup id \"xxxxxxxx"},
		{[]string{"delete", "20990101T000000Z", "--force"}, "no such finished backup"},
		{[]string{"show", "x", "--force"}, `show: unknown option "--force"`},
	} {
		r := pgward(t, append([]string{"--repo", repoURL, "backup"}, tc.args...)...)
		r.check(t, exitError, []string{tc.want}, nil)
		if len(r.stderr) > 400 {
			t.Errorf("%.40v: a %d-byte message", tc.args, len(r.stderr))
		}
	}
}
