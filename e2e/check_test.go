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
)

// TestCheck drives the freshness probe: OK on a healthy archive, CRITICAL
// naming a segment deleted from the middle of the chain, WARNING then
// CRITICAL as (simulated) time passes without new WAL, UNKNOWN when the
// repository is unreachable.
func TestCheck(t *testing.T) {
	arch := newArchiving(t)
	base, identity, recipient, repoPath, repo, primary := arch.base, arch.identity, arch.recipient, arch.repoPath, arch.repo, arch.primary
	stop := primary.keepSwitching()
	must(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source",
		fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port), "--checkpoint", "fast", "--wal-timeout", "2m")
	stop()
	for i := 0; i < 3; i++ {
		primary.psql(fmt.Sprintf("CREATE TABLE t%d AS SELECT generate_series(1, 1000)", i))
		primary.switchAndWaitArchived(time.Minute)
	}

	check := func(env []string, args ...string) result {
		return run(t, base, env, pgward, append([]string{"--repo", repo, "--identity-file", identity, "check"}, args...)...)
	}
	r := check(nil)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "PGWARD OK - ") || !strings.Contains(r.stdout, "| wal_age=") || !strings.Contains(r.stdout, "gaps=0") {
		t.Fatalf("check on a healthy archive: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = check(nil, "--json")
	var facts struct {
		Status    string `json:"status"`
		NewestWAL struct {
			Name string `json:"name"`
		} `json:"newest_wal"`
		NewestBackup struct {
			ID string `json:"id"`
		} `json:"newest_backup"`
		Window struct {
			From time.Time `json:"from"`
		} `json:"window"`
		Gaps []string `json:"gaps"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &facts); err != nil || facts.Status != "OK" || facts.NewestWAL.Name == "" || facts.NewestBackup.ID == "" || facts.Window.From.IsZero() {
		t.Fatalf("check --json: %v: %s", err, r.stdout)
	}

	// A segment deleted in the middle of the chain.
	segs, _ := filepath.Glob(filepath.Join(repoPath, "main", "wal", "0000000100000000000000*.zst.age"))
	if len(segs) < 4 {
		t.Fatalf("only %d segments archived", len(segs))
	}
	victim := segs[len(segs)-2]
	os.Rename(victim, victim+".aside") // keeps its checksum attribute for the way back
	name := strings.TrimSuffix(filepath.Base(victim), ".zst.age")
	r = check(nil)
	if r.code != 2 || !strings.Contains(r.stdout, "WAL chain broken: missing "+name) || !strings.Contains(r.stdout, "gaps=1") {
		t.Errorf("check with %s deleted: exit %d, %q; want CRITICAL naming it", name, r.code, r.stdout)
	}
	os.Rename(victim+".aside", victim)

	// Archiving stops: the probe's clock moves on.
	at := func(d time.Duration) []string {
		return []string{"PGWARD_TEST_NOW=" + time.Now().Add(d).UTC().Format(time.RFC3339)}
	}
	if r = check(at(10 * time.Minute)); r.code != 1 || !strings.HasPrefix(r.stdout, "PGWARD WARNING - newest WAL") {
		t.Errorf("check 10 minutes later: exit %d, %q; want WARNING", r.code, r.stdout)
	}
	if r = check(at(20 * time.Minute)); r.code != 2 || !strings.HasPrefix(r.stdout, "PGWARD CRITICAL - newest WAL") {
		t.Errorf("check 20 minutes later: exit %d, %q; want CRITICAL", r.code, r.stdout)
	}
	if r = check(at(30*time.Hour), "--wal-critical", "48h", "--wal-warning", "47h"); r.code != 1 || !strings.Contains(r.stdout, "newest base backup") {
		t.Errorf("check 30 hours later: exit %d, %q; want WARNING on the backup's age", r.code, r.stdout)
	}

	// verify reads everything back, and names a damaged object.
	if r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "verify"); r.code != 0 || !strings.Contains(r.stdout, " 0 damaged") {
		t.Errorf("verify on a healthy archive: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	data, _ := os.ReadFile(victim)
	data[len(data)/2] ^= 0xFF
	os.WriteFile(victim, data, 0o600)
	own(t, victim)
	if r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "verify"); r.code == 0 || !strings.Contains(r.stdout, "DAMAGED main/wal/"+filepath.Base(victim)) {
		t.Errorf("verify with a corrupted object: exit %d, %q; want it named", r.code, r.stdout)
	}

	// The repository unreachable.
	r = run(t, base, nil, pgward, "--repo", "file://"+filepath.Join(base, "not-mounted"), "check")
	if r.code != 3 || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("check on a missing repository: exit %d, %q; want UNKNOWN with the reason", r.code, r.stderr)
	}
}
