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
	"github.com/pgward/pgward/wal"
)

// TestPrune simulates ten days of nightly backups and continuous WAL, and
// prunes with a 7-day window: exactly the backups inside the window and
// the newest before it stay, WAL before that one's start goes; a restore to
// the window's oldest second works and one second earlier is refused.
func TestPrune(t *testing.T) {
	arch := newArchiving(t)
	base, identity, recipient, repoPath, repo, primary := arch.base, arch.identity, arch.recipient, arch.repoPath, arch.repo, arch.primary
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port)
	type info struct {
		ID       string    `json:"id"`
		StartLSN string    `json:"start_lsn"`
		StopTime time.Time `json:"stop_time"`
	}
	now := time.Now().UTC()
	day := 24 * time.Hour
	var backups []info // backups[d] taken on simulated day now-(10-d)
	stop := primary.keepSwitching()
	for d := 0; d < 10; d++ {
		primary.psql(fmt.Sprintf("CREATE TABLE t%d AS SELECT generate_series(1, 1000)", d))
		env := []string{"PGWARD_TEST_NOW=" + now.Add(-time.Duration(10-d)*day).Format(time.RFC3339Nano)}
		out := must(t, base, env, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast", "--wal-timeout", "2m", "--json")
		var b info
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, b)
	}
	stop()
	primary.switchAndWaitArchived(time.Minute)
	segsBefore, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "00000001????????????????.zst.age"))

	env := []string{"PGWARD_TEST_NOW=" + now.Format(time.RFC3339Nano)}
	prune := func(args ...string) result {
		return run(t, base, env, pgward, append([]string{"--repo", repo, "prune"}, args...)...)
	}
	// Days 3 to 9 are inside the window, day 2 is its base; 0 and 1 go.
	gone, kept := backups[:2], backups[2:]
	dry := prune("--dry-run")
	if dry.code != 0 || !strings.Contains(dry.stdout, "would delete backup "+gone[0].ID) || !strings.Contains(dry.stdout, "would delete backup "+gone[1].ID) ||
		strings.Contains(dry.stdout, kept[0].ID) {
		t.Fatalf("prune --dry-run: exit %d, %q %q", dry.code, dry.stdout, dry.stderr)
	}
	if segs, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "00000001????????????????.zst.age")); len(segs) != len(segsBefore) {
		t.Fatal("--dry-run deleted WAL")
	}
	if r := prune(); r.code != 0 {
		t.Fatalf("prune: exit %d: %s", r.code, r.stderr)
	}
	list := must(t, base, nil, pgward, "--repo", repo, "backup", "list")
	for _, b := range gone {
		if strings.Contains(list, b.ID) {
			t.Errorf("backup %s, outside the window and not its base, survived prune", b.ID)
		}
		if left, _ := os.ReadDir(filepath.Join(repoPath, "main", "basebackups", b.ID)); len(left) > 0 {
			t.Errorf("pruned backup %s left %d objects", b.ID, len(left))
		}
	}
	for _, b := range kept {
		if !strings.Contains(list, b.ID) {
			t.Errorf("backup %s, which retention keeps, was deleted", b.ID)
		}
	}
	// WAL before the base backup's start is gone; from it on, every
	// segment is kept.
	startLSN, err := wal.ParseLSN(kept[0].StartLSN)
	if err != nil {
		t.Fatal(err)
	}
	startSeg := wal.SegmentName(1, wal.SegmentNo(startLSN, 16<<20), 16<<20)
	segs, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "00000001????????????????.zst.age"))
	have := map[string]bool{}
	for _, s := range segs {
		name := filepath.Base(s)[:24]
		have[name] = true
		if name < startSeg {
			t.Errorf("prune kept %s, before the base backup's first segment %s", name, startSeg)
		}
	}
	for _, s := range segsBefore {
		if name := filepath.Base(s)[:24]; name >= startSeg && !have[name] {
			t.Errorf("prune deleted %s, which the window needs (from %s on)", name, startSeg)
		}
	}
	if len(segs) == len(segsBefore) {
		t.Errorf("prune deleted no WAL")
	}
	if r := prune(); r.code != 0 || !strings.Contains(r.stdout, "deleted 0 backups and 0 WAL objects") {
		t.Errorf("a second prune: exit %d, %q; want nothing left to delete", r.code, r.stdout)
	}

	// The oldest second of the window restores for real, from the kept WAL.
	dir, port := filepath.Join(base, "restore-oldest"), miniotest.FreePort(t)
	r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", dir,
		"--to-time", kept[0].StopTime.UTC().Format(time.RFC3339Nano), "--start", "--port", fmt.Sprint(port))
	if r.code != 0 || !strings.Contains(r.stdout, "plan: backup "+kept[0].ID) {
		t.Fatalf("restore to the window's oldest second: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	restored := &cluster{t: t, dir: dir, port: port, sock: base}
	t.Cleanup(func() { restored.stop("immediate") })
	if got := restored.psql("SELECT count(*) FROM t2"); got != "1000" {
		t.Errorf("restored t2 has %s rows, want 1000", got)
	}
	// t3 was created after that backup ended: recovery stopped before it.
	if got := restored.psql("SELECT to_regclass('t3') IS NULL"); got != "t" {
		t.Errorf("restored to the window's oldest second, t3 (created later) exists: recovery did not stop at the target")
	}
	r = run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", filepath.Join(base, "refused"), "--dry-run",
		"--to-time", kept[0].StopTime.Add(-time.Second).UTC().Format(time.RFC3339Nano))
	if r.code == 0 || !strings.Contains(r.stderr, "outside the restorable window") {
		t.Errorf("restore one second before the window: exit %d, %q; want refused", r.code, r.stderr)
	}
}
