//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestPrune keeps exactly what the retention contract says: with three
// backups and a window holding only the newest, the middle one stays as
// the window's base, the oldest and the WAL before the base go; a restore
// to the window's oldest second works and one second earlier is refused.
func TestPrune(t *testing.T) {
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	repoPath := repoDir(t, base)
	repo := "file://" + repoPath
	primary := newPrimary(t, base, pgward+" --repo "+repo+" --recipient "+recipient+" wal-push %p", "max_wal_senders = 10")
	primary.start()
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port)
	type info struct {
		ID       string    `json:"id"`
		StartLSN string    `json:"start_lsn"`
		StopTime time.Time `json:"stop_time"`
	}
	var backups []info
	stop := primary.keepSwitching()
	for i := 0; i < 3; i++ {
		primary.psql(fmt.Sprintf("CREATE TABLE t%d AS SELECT generate_series(1, 1000)", i))
		out := must(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast", "--wal-timeout", "2m", "--json")
		var b info
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, b)
	}
	stop()
	primary.switchAndWaitArchived(time.Minute)
	segsBefore, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "0000000100000000000000*"))

	now := backups[2].StopTime.Add(time.Second)
	env := []string{"PGWARD_TEST_NOW=" + now.UTC().Format(time.RFC3339Nano)}
	prune := func(args ...string) result {
		return run(t, base, env, pgward, append([]string{"--repo", repo, "prune", "--window", "2s"}, args...)...)
	}
	dry := prune("--dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "would delete backup "+backups[0].ID) || strings.Contains(dry.stdout, backups[1].ID) {
		t.Fatalf("prune --dry-run: exit %d, %q %q", dry.code, dry.stdout, dry.stderr)
	}
	if segs, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "0000000100000000000000*")); len(segs) != len(segsBefore) {
		t.Fatal("--dry-run deleted WAL")
	}
	if r := prune(); r.code != 0 {
		t.Fatalf("prune: exit %d: %s", r.code, r.stderr)
	}
	list := must(t, base, nil, pgward, "--repo", repo, "backup", "list")
	if strings.Contains(list, backups[0].ID) || !strings.Contains(list, backups[1].ID) || !strings.Contains(list, backups[2].ID) {
		t.Errorf("after prune the backups are:\n%s\nwant %s and %s only", list, backups[1].ID, backups[2].ID)
	}
	if _, err := os.Stat(filepath.Join(repoPath, "main", "basebackups", backups[0].ID)); err == nil {
		if left, _ := os.ReadDir(filepath.Join(repoPath, "main", "basebackups", backups[0].ID)); len(left) > 0 {
			t.Errorf("the pruned backup left %d objects", len(left))
		}
	}
	// WAL before the base backup's start is gone; from it on, kept.
	startSeg := "00000001" + strings.Repeat("0", 8) + fmt.Sprintf("%08X", mustLSN(t, backups[1].StartLSN)>>24)
	segs, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "0000000100000000000000*"))
	for _, s := range segs {
		if name := filepath.Base(s)[:24]; name < startSeg {
			t.Errorf("prune kept %s, before the base backup's first segment %s", name, startSeg)
		}
	}
	if len(segs) == len(segsBefore) {
		t.Errorf("prune deleted no WAL")
	}

	restoreAt := func(at time.Time) result {
		dir := filepath.Join(base, "restore-"+at.Format("150405.000000000"))
		return run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", dir, "--dry-run",
			"--to-time", at.UTC().Format(time.RFC3339Nano))
	}
	// The oldest second of the window restores for real, from the kept WAL.
	dir, port := filepath.Join(base, "restore-oldest"), miniotest.FreePort(t)
	r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", dir,
		"--to-time", backups[1].StopTime.UTC().Format(time.RFC3339Nano), "--start", "--port", fmt.Sprint(port))
	if r.code != 0 || !strings.Contains(r.stdout, "plan: backup "+backups[1].ID) {
		t.Fatalf("restore to the window's oldest second: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	restored := &cluster{t: t, dir: dir, port: port, sock: base}
	t.Cleanup(func() { restored.stop("immediate") })
	if got := restored.psql("SELECT count(*) FROM t1"); got != "1000" {
		t.Errorf("restored t1 has %s rows, want 1000", got)
	}
	if r := restoreAt(backups[1].StopTime.Add(-time.Second)); r.code == 0 || !strings.Contains(r.stderr, "outside the restorable window") {
		t.Errorf("restore one second before the window: exit %d, %q; want refused", r.code, r.stderr)
	}
}

func mustLSN(t *testing.T, s string) uint64 {
	t.Helper()
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		t.Fatal(err)
	}
	return hi<<32 | lo
}
