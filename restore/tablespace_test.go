package restore_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/inventory"
	"github.com/pgward/pgward/restore"
)

func TestParseTablespaceMap(t *testing.T) {
	for _, tc := range []struct {
		specs   []string
		want    map[string]string
		wantErr string
	}{
		{[]string{"16390=/srv/ts"}, map[string]string{"16390": "/srv/ts"}, ""},
		{[]string{"16390=/srv/ts/", "16391=/srv//ts2"}, map[string]string{"16390": "/srv/ts", "16391": "/srv/ts2"}, ""},
		{[]string{`16390=/srv/back\slash`}, map[string]string{"16390": `/srv/back\slash`}, ""},
		{[]string{"16390=/srv/a b's"}, map[string]string{"16390": "/srv/a b's"}, ""},
		{nil, map[string]string{}, ""},
		{[]string{""}, nil, `--tablespace-map "": want OID=/absolute/dir`},
		{[]string{"16390"}, nil, `--tablespace-map "16390": want OID=/absolute/dir`},
		{[]string{"="}, nil, `--tablespace-map "=": "" is not a tablespace OID`},
		{[]string{"=/srv/ts"}, nil, `"" is not a tablespace OID`},
		{[]string{"16390="}, nil, `--tablespace-map "16390=": directory is empty: give an absolute path`},
		{[]string{"ts=/srv/ts"}, nil, `"ts" is not a tablespace OID (a number like 16390: SELECT oid, spcname FROM pg_tablespace)`},
		{[]string{"0=/srv/ts"}, nil, `"0" is not a tablespace OID`},
		{[]string{"016390=/srv/ts"}, nil, `"016390" is not a tablespace OID`},
		{[]string{"+16390=/srv/ts"}, nil, `"+16390" is not a tablespace OID`},
		{[]string{"4294967296=/srv/ts"}, nil, `"4294967296" is not a tablespace OID`},
		{[]string{"16390=srv/ts"}, nil, `directory "srv/ts" is not absolute`},
		{[]string{"16390=.."}, nil, `directory ".." is not absolute`},
		{[]string{"16390=/srv/../etc"}, nil, `the directory has a ".." element`},
		{[]string{"16390=/srv/ts\n16391 /etc"}, nil, `directory "/srv/ts\n16391 /etc" holds the control character U+000A`},
		{[]string{"16390=/srv/ts\r"}, nil, `holds the control character U+000D`},
		{[]string{"16390=/srv/\x00ts"}, nil, `holds the control character U+0000`},
		{[]string{"16390=/srv/\xffts"}, nil, `is not valid UTF-8`},
		{[]string{"16390=/srv/a", "16390=/srv/b"}, nil, "tablespace 16390 is mapped twice"},
	} {
		got, err := restore.ParseTablespaceMap(tc.specs)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseTablespaceMap(%q) = %v, %v; want an error with %q", tc.specs, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseTablespaceMap(%q) = %v, %v; want %v", tc.specs, got, err, tc.want)
		}
	}
}

func withTablespaces(locations ...string) catalog.BackupInfo {
	b := catalog.BackupInfo{ID: "B", Trusted: true}
	for i, loc := range locations {
		b.Archives = append(b.Archives, catalog.BackupArchive{Name: []string{"16390.tar", "16391.tar", "16392.tar"}[i], Tablespace: loc})
	}
	b.Archives = append(b.Archives, catalog.BackupArchive{Name: "base.tar"})
	return b
}

func TestPlanTablespaces(t *testing.T) {
	const pgdata = "/var/lib/postgresql/15/restore"
	for _, tc := range []struct {
		name    string
		backup  catalog.BackupInfo
		tsMap   map[string]string
		want    []restore.Tablespace
		wantErr string
	}{
		{"none", withTablespaces(), nil, nil, ""},
		{"recorded", withTablespaces("/srv/ts1"), nil,
			[]restore.Tablespace{{OID: "16390", Dir: "/srv/ts1", Recorded: "/srv/ts1"}}, ""},
		{"mapped", withTablespaces("/srv/ts1", "/srv/ts2"), map[string]string{"16391": "/var/lib/postgresql/15/ts2"},
			[]restore.Tablespace{{OID: "16390", Dir: "/srv/ts1", Recorded: "/srv/ts1"}, {OID: "16391", Dir: "/var/lib/postgresql/15/ts2", Recorded: "/srv/ts2", Mapped: true}}, ""},
		{"mapped away from a system directory", withTablespaces("/root/.ssh"), map[string]string{"16390": "/srv/ts"},
			[]restore.Tablespace{{OID: "16390", Dir: "/srv/ts", Recorded: "/root/.ssh", Mapped: true}}, ""},
		{"a backslash is a character", withTablespaces(`/srv/a\b`), nil,
			[]restore.Tablespace{{OID: "16390", Dir: `/srv/a\b`, Recorded: `/srv/a\b`}}, ""},
		{"forged into /root/.ssh", withTablespaces("/root/.ssh"), nil, nil,
			"tablespace 16390: /root/.ssh is inside the system directory /root: pgward never restores there; restore it elsewhere with --tablespace-map 16390=DIR"},
		{"forged into /etc", withTablespaces("/etc/cron.d"), nil, nil, "/etc/cron.d is inside the system directory /etc"},
		{"into /usr/local", withTablespaces("/usr/local/pgsql/ts"), nil, nil, "inside the system directory /usr"},
		{"/", withTablespaces("/"), nil, nil, "tablespace 16390: / is a system directory"},
		{"/var/lib/postgresql itself", withTablespaces("/var/lib/postgresql"), nil, nil, "/var/lib/postgresql is a system directory"},
		{"/proc", withTablespaces("/proc/self"), nil, nil, "inside the system directory /proc"},
		{"mapped into /run", withTablespaces("/srv/ts"), map[string]string{"16390": "/run/ts"}, nil, "inside the system directory /run"},
		{"inside the data directory", withTablespaces(pgdata + "/pg_tblspc/x"), nil, nil,
			"tablespace 16390: " + pgdata + "/pg_tblspc/x is inside the data directory " + pgdata},
		{"the data directory", withTablespaces(pgdata), nil, nil, "is inside the data directory"},
		{"holding the data directory", withTablespaces("/var/lib/postgresql/15"), nil, nil,
			"/var/lib/postgresql/15 holds the data directory " + pgdata},
		{"two overlap", withTablespaces("/srv/ts", "/srv/ts/inner"), nil, nil,
			"tablespaces 16390 (/srv/ts) and 16391 (/srv/ts/inner) overlap"},
		{"two the same", withTablespaces("/srv/ts", "/srv/ts"), nil, nil, "overlap"},
		{"a prefix is not inside", withTablespaces("/srv/ts", "/srv/ts2"), nil,
			[]restore.Tablespace{{OID: "16390", Dir: "/srv/ts", Recorded: "/srv/ts"}, {OID: "16391", Dir: "/srv/ts2", Recorded: "/srv/ts2"}}, ""},
		{"relative", withTablespaces("srv/ts"), nil, nil, `location "srv/ts" is not absolute`},
		{"unclean", withTablespaces("/srv/x/../../etc"), nil, nil, `location "/srv/x/../../etc" is not a clean path`},
		{"a newline", withTablespaces("/srv/ts\n16391 /etc"), nil, nil, "holds the control character U+000A"},
		{"no location", withTablespaces(""), nil, nil, "tablespace 16390 has no recorded location: give --tablespace-map 16390=DIR"},
		{"an unknown OID in the map", withTablespaces("/srv/ts"), map[string]string{"16999": "/srv/x"}, nil,
			"--tablespace-map 16999: backup B has no such tablespace (its tablespaces: 16390)"},
		{"a map for a backup without tablespaces", withTablespaces(), map[string]string{"16390": "/srv/x"}, nil, "(it has none)"},
		{"an archive name", catalog.BackupInfo{ID: "B", Archives: []catalog.BackupArchive{{Name: "base.tar"}, {Name: "../x.tar", Tablespace: "/srv/x"}}}, nil, nil,
			`archive "../x.tar" is neither base.tar nor OID.tar`},
		{"a tablespace twice", catalog.BackupInfo{ID: "B", Archives: []catalog.BackupArchive{{Name: "base.tar"}, {Name: "1.tar", Tablespace: "/srv/a"}, {Name: "1.tar", Tablespace: "/srv/b"}}}, nil, nil,
			"lists tablespace 1 twice"},
		{"an unsigned backup.json's location", func() catalog.BackupInfo { b := withTablespaces("/srv/ts"); b.Trusted = false; return b }(), nil, nil,
			`backup B: its backup.json is not signed by a --trusted-signer, so its location for tablespace 16390 ("/srv/ts") is not trusted: give --tablespace-map 16390=DIR`},
		{"an unsigned backup.json, mapped", func() catalog.BackupInfo { b := withTablespaces("/root/.ssh"); b.Trusted = false; return b }(), map[string]string{"16390": "/srv/ts"},
			[]restore.Tablespace{{OID: "16390", Dir: "/srv/ts", Recorded: "/root/.ssh", Mapped: true}}, ""},
		{"no base.tar", catalog.BackupInfo{ID: "B", Archives: []catalog.BackupArchive{{Name: "16390.tar", Tablespace: "/srv/a"}}}, nil, nil, "has 0 base.tar archives"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := restore.PlanTablespaces(tc.backup, pgdata, tc.tsMap)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("PlanTablespaces = %v, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("PlanTablespaces = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestTargetValidate(t *testing.T) {
	for _, tc := range []struct {
		target  restore.Target
		wantErr string
	}{
		{restore.Target{Kind: restore.Latest}, ""},
		{restore.Target{Kind: restore.XID, XID: 3}, ""},
		{restore.Target{Kind: restore.XID, XID: 4294967295}, ""},
		{restore.Target{Kind: restore.XID, XID: 2}, "--to-xid 2: transaction ids start at 3"},
		{restore.Target{Kind: restore.XID, XID: 4294967296}, "--to-xid 4294967296: recovery_target_xid holds a 32-bit transaction id (3 to 4294967295); " +
			"a 64-bit id from txid_current() or pg_current_xact_id() carries the epoch in its high bits: give its low 32 bits (0)"},
		{restore.Target{Kind: restore.XID, XID: 1<<32 + 1234}, "give its low 32 bits (1234)"},
		{restore.Target{Kind: restore.Name, Name: "before-migration"}, ""},
		{restore.Target{Kind: restore.Name, Name: `it's a \ point\`}, ""},
		{restore.Target{Kind: restore.Name, Name: strings.Repeat("n", 63)}, ""},
		{restore.Target{Kind: restore.Name, Name: strings.Repeat("é", 31) + "n"}, ""},
		{restore.Target{Kind: restore.Name, Name: strings.Repeat("n", 64)}, "--to-name: 64 bytes, but PostgreSQL restore point names are at most 63 bytes"},
		{restore.Target{Kind: restore.Name, Name: strings.Repeat("é", 32)}, "--to-name: 64 bytes"},
		{restore.Target{Kind: restore.Name}, "--to-name is empty"},
		{restore.Target{Kind: restore.Name, Name: "x\\'\nrecovery_end_command = pwned\n#"},
			`--to-name "x\\'\nrecovery_end_command = pwned\n#": holds the control character U+000A at byte 3: refused, a recovery setting is one line`},
		{restore.Target{Kind: restore.Name, Name: "a\tb"}, "U+0009"},
		{restore.Target{Kind: restore.Name, Name: "a\x00"}, "U+0000"},
		{restore.Target{Kind: restore.Name, Name: "a\x7f"}, "U+007F"},
		{restore.Target{Kind: restore.Name, Name: "a\u0085"}, "U+0085"},
		{restore.Target{Kind: restore.Name, Name: "a\xff"}, "not valid UTF-8"},
	} {
		err := tc.target.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Validate = %v, want %q", tc.target, err, tc.wantErr)
		}
	}
	// MakePlan refuses it before anything else.
	_, err := restore.MakePlan(inventory.State{}, restore.Target{Kind: restore.Name, Name: "a\nb"}, "")
	if err == nil || !strings.Contains(err.Error(), "control character") {
		t.Errorf("MakePlan with a name holding a newline = %v", err)
	}
}
