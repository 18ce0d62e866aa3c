//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// refusedWith checks that a command failed with exit status 1 and that
// its last line of stderr is exactly pgward's message want.
func refusedWith(t *testing.T, what string, r result, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if r.code != 1 || lines[len(lines)-1] != "pgward: "+want {
		t.Errorf("%s: exit %d, stderr:\n%s\nwant exit 1 and the last line:\npgward: %s", what, r.code, r.stderr, want)
	}
}

// mkdirOwned creates dir and its missing parents for the postgres user.
func mkdirOwned(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); err == nil {
		return
	}
	mkdirOwned(t, filepath.Dir(dir))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	own(t, dir)
}

// TestRestoreSafety: restore never writes or deletes where it should not,
// and what it writes PostgreSQL reads back as meant. One small cluster
// with a tablespace, one backup, a restore point named with a quote and a
// backslash; then --force refusals (a nested postmaster.pid, /, another
// data directory), tablespace locations in --dry-run, injected and
// oversized names, credentials, and two real recoveries: to that restore
// point, and into a --pgdata with a space and a quote.
func TestRestoreSafety(t *testing.T) {
	arch := newSignedArchiving(t) // tablespace locations are trusted only when signed
	base, identity, recipient, repo, primary := arch.base, arch.identity, arch.recipient, arch.repo, arch.primary
	tsPrimary := filepath.Join(base, "ts-primary")
	mkdirOwned(t, tsPrimary)
	primary.psql("CREATE TABLESPACE ts LOCATION '" + tsPrimary + "'")
	primary.psql("CREATE TABLE t (id int PRIMARY KEY)")
	primary.psql("CREATE TABLE tt (x int) TABLESPACE ts")
	primary.psql("INSERT INTO tt SELECT generate_series(1, 50)")
	oid := primary.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
	stopSwitching := primary.keepSwitching()
	must(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "--signing-key-file", arch.signingKey, "backup", "--source", arch.source, "--checkpoint", "fast", "--wal-timeout", "2m")
	stopSwitching()
	primary.psql("INSERT INTO t SELECT generate_series(1, 100)")
	const pointName = `it's a \ point`
	primary.psql(`SELECT pg_create_restore_point('it''s a \ point')`)
	primary.psql("INSERT INTO t SELECT generate_series(101, 200)")
	primary.switchAndWaitArchived(time.Minute)

	restoreArgs := func(args ...string) []string {
		return append([]string{"--repo", repo, "--identity-file", identity, "--trusted-signer", arch.signer, "restore"}, args...)
	}
	tsMap := func(dir string) string { return oid + "=" + dir }

	t.Run("force over a nested postmaster.pid", func(t *testing.T) {
		victim := filepath.Join(base, "victim")
		p := filepath.Join(victim, "P")
		mkdirOwned(t, filepath.Join(p, "15", "main"))
		writeConfig(t, filepath.Join(p, "15", "main"), "postmaster.pid", "")
		writeConfig(t, p, "notes.txt", "keep me")
		before := fileTreeState(t, victim)
		want := fmt.Sprintf("--force refused: %s exists: a PostgreSQL server may be running on %s; stop it (or, if no server runs there, remove the file), or restore elsewhere. Nothing was changed",
			filepath.Join(p, "15", "main", "postmaster.pid"), filepath.Join(p, "15", "main"))
		for _, extra := range [][]string{nil, {"--dry-run"}} {
			r := run(t, base, nil, pgward, restoreArgs(append([]string{"--pgdata", p, "--latest", "--force"}, extra...)...)...)
			refusedWith(t, fmt.Sprintf("--force %v over P/15/main/postmaster.pid", extra), r, want)
		}
		assertTreeUnchanged(t, "a refused --force", victim, before)
	})

	t.Run("force over another data directory or a plain directory", func(t *testing.T) {
		victim := filepath.Join(base, "victim2")
		outer, plain := filepath.Join(victim, "outer"), filepath.Join(victim, "plain")
		mkdirOwned(t, filepath.Join(outer, "old", "main"))
		writeConfig(t, outer, "PG_VERSION", "15\n")
		writeConfig(t, filepath.Join(outer, "old", "main"), "PG_VERSION", "15\n")
		mkdirOwned(t, filepath.Join(outer, "old", "main", "global"))
		writeConfig(t, filepath.Join(outer, "old", "main", "global"), "pg_control", "x")
		mkdirOwned(t, plain)
		writeConfig(t, plain, "photo.jpg", "x")
		before := fileTreeState(t, victim)
		r := run(t, base, nil, pgward, restoreArgs("--pgdata", outer, "--latest", "--force")...)
		refusedWith(t, "--force over a tree holding a data directory", r, fmt.Sprintf(
			"--force refused: %s holds another data directory, %s (it has PG_VERSION): --force replaces one data directory, never a tree that holds one; give that directory itself or an empty one. Nothing was changed",
			outer, filepath.Join(outer, "old", "main")))
		r = run(t, base, nil, pgward, restoreArgs("--pgdata", plain, "--latest", "--force")...)
		refusedWith(t, "--force over a directory that is not a data directory", r, fmt.Sprintf(
			"--force refused: %s is not empty and is not a PostgreSQL data directory (no PG_VERSION at its top): --force replaces only a data directory; give an empty or new directory. Nothing was changed", plain))
		assertTreeUnchanged(t, "a refused --force", victim, before)
	})

	t.Run("system directories", func(t *testing.T) {
		for dir, want := range map[string]string{
			"/":               "--pgdata / is a system directory: pgward never restores into it; give a directory of its own below it",
			"/etc":            "--pgdata /etc is a system directory: pgward never restores into it; give a directory of its own below it",
			"/usr/../var/":    "--pgdata /var is a system directory: pgward never restores into it; give a directory of its own below it",
			"/etc/pg-restore": "--pgdata /etc/pg-restore is inside the system directory /etc: pgward never restores there",
		} {
			r := run(t, base, nil, pgward, restoreArgs("--pgdata", dir, "--latest", "--force", "--dry-run")...)
			refusedWith(t, "--pgdata "+dir+" --force --dry-run", r, want)
			if r.stdout != "" {
				t.Errorf("--pgdata %s: a plan was printed: %s", dir, r.stdout)
			}
		}
		if _, err := os.Stat("/etc/pg-restore"); !os.IsNotExist(err) {
			t.Errorf("/etc/pg-restore was created")
		}
	})

	t.Run("targets refused before anything is touched", func(t *testing.T) {
		untouched := filepath.Join(base, "untouched")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--to-name", "x\\'\nrecovery_end_command = pwned\n#"},
				`--to-name "x\\'\nrecovery_end_command = pwned\n#": holds the control character U+000A at byte 3: refused, a recovery setting is one line`},
			{[]string{"--to-name", strings.Repeat("n", 64)}, "--to-name: 64 bytes, but PostgreSQL restore point names are at most 63 bytes: no restore point can have this name"},
			{[]string{"--to-name", ""}, "--to-name is empty: give the name passed to pg_create_restore_point"},
			{[]string{"--to-time", ""}, "--to-time is empty: give a time, like '2026-11-20 14:03:00+01' or 2026-11-20T13:03:00Z"},
			{[]string{"--to-xid", "4294967296"}, "--to-xid 4294967296: recovery_target_xid holds a 32-bit transaction id (3 to 4294967295); " +
				"a 64-bit id from txid_current() or pg_current_xact_id() carries the epoch in its high bits: give its low 32 bits (0)"},
			{[]string{"--to-xid", "2"}, "--to-xid 2: transaction ids start at 3 (0 to 2 are reserved)"},
			{nil, "give exactly one target: --to-time, --to-lsn, --to-xid, --to-name or --latest (none was given)"},
			{[]string{"--latest", "--tablespace-map", oid + "=/srv/a\nb"}, fmt.Sprintf(`--tablespace-map "%s=/srv/a\nb": directory "/srv/a\nb" holds the control character U+000A at byte 6: refused, a recovery setting is one line`, oid)},
			{[]string{"--latest", "--tablespace-map", "="}, `--tablespace-map "=": "" is not a tablespace OID (a number like 16390: SELECT oid, spcname FROM pg_tablespace)`},
			{[]string{"--latest", "--tablespace-map", oid + "=/srv/../etc"}, fmt.Sprintf(`--tablespace-map "%s=/srv/../etc": the directory has a ".." element: give the path it means`, oid)},
		} {
			r := run(t, base, nil, pgward, restoreArgs(append([]string{"--pgdata", untouched}, tc.args...)...)...)
			refusedWith(t, fmt.Sprintf("restore %q", tc.args), r, tc.want)
			if _, err := os.Stat(untouched); !os.IsNotExist(err) {
				t.Fatalf("restore %q created %s", tc.args, untouched)
			}
		}
	})

	t.Run("tablespace locations in the plan", func(t *testing.T) {
		dry, tsDry := filepath.Join(base, "dry"), filepath.Join(base, "ts-dry")
		// Without a trusted signer, the recorded location is not trusted.
		r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", dry, "--latest", "--dry-run")
		if want := fmt.Sprintf("its backup.json is not signed by a --trusted-signer, so its location for tablespace %s (%q) is not trusted: give --tablespace-map %s=DIR\n", oid, tsPrimary, oid); r.code != 1 || !strings.HasSuffix(r.stderr, want) {
			t.Errorf("an untrusted backup.json's location: exit %d, stderr:\n%s\nwant exit 1 ending in %q", r.code, r.stderr, want)
		}
		// The recorded location is the primary's live tablespace.
		r = run(t, base, nil, pgward, restoreArgs("--pgdata", dry, "--latest", "--dry-run")...)
		refusedWith(t, "the recorded (live) location", r, fmt.Sprintf(
			"tablespace %s: %s is not empty (--force never applies to tablespaces: on the source's host it is live); restore it elsewhere with --tablespace-map %s=DIR", oid, tsPrimary, oid))
		if want := fmt.Sprintf("plan: tablespace %s into %s (its recorded location)\n", oid, tsPrimary); !strings.Contains(r.stdout, want) {
			t.Errorf("the plan does not show the tablespace: %q, want %q", r.stdout, want)
		}
		for _, tc := range []struct{ dir, want string }{
			{"/etc/ts", fmt.Sprintf("tablespace %s: /etc/ts is inside the system directory /etc: pgward never restores there; restore it elsewhere with --tablespace-map %s=DIR", oid, oid)},
			{"/root/.ssh", fmt.Sprintf("tablespace %s: /root/.ssh is inside the system directory /root: pgward never restores there; restore it elsewhere with --tablespace-map %s=DIR", oid, oid)},
			{dry + "/ts", fmt.Sprintf("tablespace %s: %s/ts is inside the data directory %s; restore it elsewhere with --tablespace-map %s=DIR", oid, dry, dry, oid)},
			{base, fmt.Sprintf("tablespace %s: %s holds the data directory %s; restore it elsewhere with --tablespace-map %s=DIR", oid, base, dry, oid)},
			{primary.dir + "/ts", fmt.Sprintf("tablespace %s: %s/ts is inside the data directory %s (it has PG_VERSION); restore it elsewhere with --tablespace-map %s=DIR", oid, primary.dir, primary.dir, oid)},
		} {
			r := run(t, base, nil, pgward, restoreArgs("--pgdata", dry, "--latest", "--dry-run", "--tablespace-map", tsMap(tc.dir))...)
			refusedWith(t, "--tablespace-map "+tc.dir, r, tc.want)
		}
		r = run(t, base, nil, pgward, restoreArgs("--pgdata", dry, "--latest", "--dry-run", "--tablespace-map", tsMap(tsDry+"/"))...)
		if want := fmt.Sprintf("plan: tablespace %s into %s (--tablespace-map; recorded at %q)\n", oid, tsDry, tsPrimary); r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("--dry-run with a map: exit %d, %q %q; want %q", r.code, r.stdout, r.stderr, want)
		}
		for _, p := range []string{dry, tsDry, primary.dir + "/ts", "/etc/ts"} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("a dry run or a refusal created %s", p)
			}
		}
	})

	t.Run("credentials are never written", func(t *testing.T) {
		dir := filepath.Join(base, "secret")
		r := run(t, base, nil, pgward, append([]string{"--s3-endpoint", "http://AKIAEXAMPLE:VERYSECRETKEY@127.0.0.1:1"},
			restoreArgs("--pgdata", dir, "--latest", "--tablespace-map", tsMap(filepath.Join(base, "ts-secret")))...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "credentials") || strings.Contains(r.stderr+r.stdout, "VERYSECRETKEY") {
			t.Errorf("an endpoint with credentials: exit %d, %q %q; want refused without showing the secret", r.code, r.stdout, r.stderr)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("a refused restore created %s", dir)
		}
	})

	t.Run("to a restore point named with a quote and a backslash", func(t *testing.T) {
		dir, ts := filepath.Join(base, "named"), filepath.Join(base, "ts-named")
		port := miniotest.FreePort(t)
		r := run(t, base, nil, pgward, restoreArgs("--pgdata", dir, "--to-name", pointName, "--tablespace-map", tsMap(ts),
			"--start", "--port", strconv.Itoa(port), "--start-timeout", "2m")...)
		c := &cluster{t: t, dir: dir, port: port, sock: base}
		t.Cleanup(func() { c.stop("immediate") })
		if r.code != 0 || !strings.Contains(r.stdout, `recovery stopping at restore point "`+pointName+`"`) {
			t.Fatalf("restore --to-name %q --start: exit %d\nstdout: %s\nstderr: %s", pointName, r.code, r.stdout, r.stderr)
		}
		if got := c.psql("SHOW recovery_target_name"); got != pointName {
			t.Errorf("PostgreSQL reads recovery_target_name as %q, want %q", got, pointName)
		}
		if got := c.psql("SELECT count(*) || ' ' || max(id) FROM t"); got != "100 100" {
			t.Errorf("rows at the restore point: %s, want 100 100", got)
		}
		if got := c.psql("SELECT count(*) FROM tt"); got != "50" {
			t.Errorf("tablespace rows: %s, want 50", got)
		}
		checkRestoreConfig(t, dir, repo, identity, arch.signer)

		// --force replaces this data directory, once stopped, and only
		// it: the tablespace it linked to stays.
		c.stop("fast")
		tsBefore := fileTreeState(t, ts)
		writeConfig(t, dir, "left-over", "x")
		ts2 := filepath.Join(base, "ts-named-2")
		r = run(t, base, nil, pgward, restoreArgs("--pgdata", dir, "--latest", "--force", "--tablespace-map", tsMap(ts2))...)
		if r.code != 0 {
			t.Fatalf("restore --force over a stopped restored cluster: exit %d: %s", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "left-over")); !os.IsNotExist(err) {
			t.Errorf("--force kept a file of the old data directory: %v", err)
		}
		assertTreeUnchanged(t, "the old tablespace after --force", ts, tsBefore)
		if _, err := os.Lstat(filepath.Join(dir, "pg_tblspc", oid)); !os.IsNotExist(err) {
			t.Errorf("the old pg_tblspc link survived --force: %v", err)
		}
		if got := mustRead(t, filepath.Join(dir, "tablespace_map")); got != oid+" "+ts2+"\n" {
			t.Errorf("tablespace_map after --force: %q, want %q", got, oid+" "+ts2+"\n")
		}
	})

	t.Run("into a directory with a space and a quote", func(t *testing.T) {
		parent := filepath.Join(base, "it's a dir")
		mkdirOwned(t, parent)
		dir, ts := filepath.Join(parent, "data 1"), filepath.Join(parent, "ts 1")
		port := miniotest.FreePort(t)
		r := run(t, base, nil, pgward, restoreArgs("--pgdata", dir, "--latest", "--tablespace-map", tsMap(ts),
			"--start", "--port", strconv.Itoa(port), "--start-timeout", "2m")...)
		c := &cluster{t: t, dir: dir, port: port, sock: base}
		t.Cleanup(func() { c.stop("immediate") })
		if r.code != 0 {
			t.Fatalf("restore into %q: exit %d\nstdout: %s\nstderr: %s", dir, r.code, r.stdout, r.stderr)
		}
		if got := c.psql("SELECT count(*) || ' ' || max(id) FROM t"); got != "200 200" {
			t.Errorf("rows: %s, want 200 200", got)
		}
		if got := c.psql("SELECT count(*) FROM tt"); got != "50" {
			t.Errorf("tablespace rows: %s, want 50", got)
		}
		if got := c.psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"); got != ts {
			t.Errorf("the tablespace is at %q, want %q", got, ts)
		}
		// The rows after the backup came through restore_command.
		if log := mustRead(t, filepath.Join(dir, "pgward-start.log")); !strings.Contains(log, "restored log file") {
			t.Errorf("recovery did not fetch WAL through restore_command:\n%s", tail(log, 20))
		}
		want := fmt.Sprintf("%s --config '%s/pgward-restore.yaml' wal-fetch %%f %%p", pgward, strings.ReplaceAll(dir, "'", `'"'"'`))
		if got := c.psql("SHOW restore_command"); got != want {
			t.Errorf("restore_command = %s, want %s", got, want)
		}
		checkRestoreConfig(t, dir, repo, identity, arch.signer)
	})
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkRestoreConfig checks that pgward-restore.yaml names the repository
// and the identity's path and holds nothing else.
func checkRestoreConfig(t *testing.T, dir, repo, identity, signer string) {
	t.Helper()
	got := mustRead(t, filepath.Join(dir, "pgward-restore.yaml"))
	want := fmt.Sprintf("# written by pgward restore for restore_command\nrepo: %s\ncluster: main\nidentity-file: %s\ntrusted-signer: %s\n", repo, identity, signer)
	if got != want {
		t.Errorf("pgward-restore.yaml:\n%s\nwant:\n%s", got, want)
	}
}
