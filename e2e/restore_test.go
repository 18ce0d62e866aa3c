//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestRestoreToTargets restores one base backup to five targets between
// committed batches (a time, an LSN, an xid, a restore point, latest) and
// checks the exact rows of each; targets outside the window and malformed
// times are refused with the directory untouched.
func TestRestoreToTargets(t *testing.T) {
	arch := newArchiving(t)
	base, identity, recipient, repo, primary := arch.base, arch.identity, arch.recipient, arch.repo, arch.primary
	primary.psql("CREATE TABLE t (id int PRIMARY KEY)")
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port)
	stopSwitching := primary.keepSwitching()
	must(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast", "--wal-timeout", "2m")
	stopSwitching()

	insert := func(from, to int) {
		primary.psql(fmt.Sprintf("INSERT INTO t SELECT generate_series(%d, %d)", from, to))
	}
	insert(1, 100)
	t1 := primary.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
	insert(101, 200)
	l2 := primary.psql("SELECT pg_current_wal_lsn()")
	x3 := primary.psql("WITH ins AS (INSERT INTO t SELECT generate_series(201, 300) RETURNING 1) SELECT txid_current() FROM (SELECT count(*) FROM ins) s")
	insert(301, 400)
	primary.psql("SELECT pg_create_restore_point('after400')")
	insert(401, 500)
	primary.switchAndWaitArchived(time.Minute)

	n := 0
	restoreTo := func(want int, args ...string) {
		t.Helper()
		n++
		dir := filepath.Join(base, "restore-"+strconv.Itoa(n))
		r := run(t, base, nil, pgward, append([]string{"--repo", repo, "--identity-file", identity, "restore", "--pgdata", dir}, args...)...)
		if r.code != 0 {
			t.Fatalf("restore %v: exit %d: %s", args, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "pgward-restore-incomplete")); !os.IsNotExist(err) {
			t.Errorf("restore %v left the incomplete marker", args)
		}
		// The WAL replay starts with was fetched while the backup unpacked.
		if spooled, _ := filepath.Glob(filepath.Join(dir, "pg_wal", ".pgward-prefetch", "0000000*")); len(spooled) == 0 {
			t.Errorf("restore %v prefetched no WAL into the spool", args)
		}
		c := &cluster{t: t, dir: dir, port: miniotest.FreePort(t), sock: base}
		c.appendConf("archive_mode = off")
		c.start()
		c.waitPromoted(2 * time.Minute)
		got := c.psql("SELECT count(*) || ' ' || coalesce(min(id), 0) || ' ' || coalesce(max(id), 0) FROM t")
		if wantS := fmt.Sprintf("%d 1 %d", want, want); got != wantS {
			t.Errorf("restore %v: rows (count min max) = %s, want %s", args, got, wantS)
		}
		c.stop("immediate")
	}
	restoreTo(100, "--to-time", t1)
	restoreTo(200, "--to-lsn", l2)
	restoreTo(300, "--to-xid", strings.TrimSpace(x3))
	restoreTo(400, "--to-name", "after400")

	// --start: pgward starts the cluster and reports where recovery stopped.
	startDir := filepath.Join(base, "restore-start")
	port := miniotest.FreePort(t)
	r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", startDir, "--to-xid", strings.TrimSpace(x3), "--start", "--port", strconv.Itoa(port))
	if r.code != 0 || !strings.Contains(r.stdout, "recovery stopping after commit of transaction "+strings.TrimSpace(x3)) {
		t.Errorf("restore --start: exit %d, %q %q; want the stop point reported", r.code, r.stdout, r.stderr)
	}
	started := &cluster{t: t, dir: startDir, port: port, sock: base}
	t.Cleanup(func() { started.stop("immediate") })
	if got := started.psql("SELECT count(*) FROM t"); got != "300" {
		t.Errorf("restore --start --to-xid: %s rows, want 300", got)
	}
	restoreTo(500, "--latest")

	// Refusals touch nothing.
	untouched := filepath.Join(base, "untouched")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--to-time", "2000-01-01 00:00:00+00"}, "restorable window is"},
		{[]string{"--to-time", time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}, "outside the restorable window"},
		{[]string{"--to-time", "yesterday at noon"}, "RFC 3339"},
		{[]string{"--to-lsn", "FFFF/0"}, "outside the restorable window"},
		{[]string{"--latest", "--to-lsn", "0/1"}, "exactly one target"},
	} {
		r := run(t, base, nil, pgward, append([]string{"--repo", repo, "--identity-file", identity, "restore", "--pgdata", untouched}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("restore %v: exit %d, %q; want refused with %q", tc.args, r.code, r.stderr, tc.want)
		}
		if _, err := os.Stat(untouched); !os.IsNotExist(err) {
			t.Fatalf("restore %v created %s", tc.args, untouched)
		}
	}
	if r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--show-window"); r.code != 0 || !strings.Contains(r.stdout, "timeline 1: ") {
		t.Errorf("--show-window: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	// The same, and the plan, for machines.
	var windows []struct {
		Timeline      uint32    `json:"timeline"`
		From          time.Time `json:"from"`
		To            time.Time `json:"to"`
		HasBaseBackup bool      `json:"has_base_backup"`
	}
	if r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--show-window", "--json"); r.code != 0 ||
		json.Unmarshal([]byte(r.stdout), &windows) != nil || len(windows) != 1 || windows[0].Timeline != 1 || !windows[0].HasBaseBackup {
		t.Errorf("--show-window --json: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	var plan struct {
		Backup      string `json:"backup"`
		WALFrom     string `json:"wal_from"`
		StoredBytes int64  `json:"stored_bytes"`
		Target      string `json:"target"`
		PGData      string `json:"pgdata"`
	}
	if r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", untouched, "--latest", "--dry-run", "--json"); r.code != 0 ||
		json.Unmarshal([]byte(r.stdout), &plan) != nil || plan.Backup == "" || plan.WALFrom == "" || plan.StoredBytes <= 0 || plan.PGData != untouched {
		t.Errorf("--dry-run --json: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(untouched); !os.IsNotExist(err) {
		t.Fatalf("restore --dry-run --json created %s", untouched)
	}
	// A non-empty directory is refused without --force, and left alone.
	occupied := filepath.Join(base, "occupied")
	os.Mkdir(occupied, 0o700)
	own(t, occupied)
	keep := writeConfig(t, occupied, "precious", "x")
	r = run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", occupied, "--latest")
	if r.code == 0 || !strings.Contains(r.stderr, "is not empty") {
		t.Errorf("restore into a non-empty directory: exit %d, %q; want refused", r.code, r.stderr)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a refused restore touched the directory: %v", err)
	}
	// A running server's directory is refused even with --force.
	r = run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", primary.dir, "--latest", "--force")
	if r.code == 0 || !strings.Contains(r.stderr, "postmaster.pid") || !primary.running() {
		t.Errorf("restore --force over a running primary: exit %d, %q", r.code, r.stderr)
	}
	// --dry-run prints the plan and touches nothing.
	r = run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", untouched, "--latest", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "plan: backup") {
		t.Errorf("--dry-run: exit %d, %q", r.code, r.stdout)
	}
	if _, err := os.Stat(untouched); !os.IsNotExist(err) {
		t.Fatalf("--dry-run created %s", untouched)
	}
}

// A tablespace is restored where --tablespace-map says, and the restored
// cluster uses it there.
func TestRestoreTablespace(t *testing.T) {
	arch := newArchiving(t)
	base, identity, recipient, repo, primary := arch.base, arch.identity, arch.recipient, arch.repo, arch.primary
	tsDir := filepath.Join(base, "ts-primary")
	os.Mkdir(tsDir, 0o700)
	own(t, tsDir)
	primary.psql("CREATE TABLESPACE ts LOCATION '" + tsDir + "'")
	primary.psql("CREATE TABLE tt (x int) TABLESPACE ts")
	primary.psql("INSERT INTO tt SELECT generate_series(1, 1234)")
	oid := primary.psql("SELECT oid FROM pg_tablespace WHERE spcname = 'ts'")
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port)
	stopSwitching := primary.keepSwitching()
	// pgward compresses this one, in parts of 1 MiB: the path for a
	// server that cannot compress.
	r := run(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast", "--wal-timeout", "2m",
		"--server-compression", "none", "--part-size", "1MiB", "--json")
	stopSwitching()
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "`+oid+`.tar"`) && !strings.Contains(r.stdout, `"name":"`+oid+`.tar"`) {
		t.Fatalf("backup: exit %d, %s %s; want an archive %s.tar", r.code, r.stdout, r.stderr, oid)
	}
	if strings.Contains(r.stdout, `"compression"`) || !strings.Contains(r.stdout, "base.tar.0001") {
		t.Fatalf("backup --server-compression none: %s; want archives pgward compressed, in several parts", r.stdout)
	}
	primary.switchAndWaitArchived(time.Minute)

	dir, tsNew := filepath.Join(base, "restored"), filepath.Join(base, "ts-restored")
	port := miniotest.FreePort(t)
	r = run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", dir, "--latest",
		"--tablespace-map", oid+"="+tsNew, "--start", "--port", strconv.Itoa(port))
	if r.code != 0 {
		t.Fatalf("restore with a tablespace map: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	c := &cluster{t: t, dir: dir, port: port, sock: base}
	t.Cleanup(func() { c.stop("immediate") })
	if got := c.psql("SELECT count(*) FROM tt"); got != "1234" {
		t.Errorf("restored tablespace table has %s rows, want 1234", got)
	}
	if got := c.psql("SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'ts'"); got != tsNew {
		t.Errorf("restored tablespace is at %q, want %q", got, tsNew)
	}
}
