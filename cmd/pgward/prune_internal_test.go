package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// prune --json prints the plan (dry) or the result as one object that
// names each deletion and why; the text form says the same per line.
func TestPruneJSON(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	now := time.Now()
	putClusterBackup(t, dir, "main", "20261001T000000Z", now.Add(-40*24*time.Hour)) // goes
	putClusterBackup(t, dir, "main", "20261101T000000Z", now.Add(-30*24*time.Hour)) // the window's base
	putClusterBackup(t, dir, "main", "20261202T000000Z", now.Add(-time.Hour))

	type result struct {
		Cluster       string `json:"cluster"`
		DryRun        bool   `json:"dry_run"`
		WindowSeconds int64  `json:"window_seconds"`
		WALKeptFrom   string `json:"wal_kept_from"`
		Backups       int    `json:"backups_deleted"`
		WALObjects    int    `json:"wal_objects_deleted"`
		Deletions     []struct{ Kind, Name, Reason string }
	}
	for _, dry := range []bool{true, false} {
		args := []string{"--repo", repoURL, "prune", "--json"}
		if dry {
			args = append(args, "--dry-run")
		}
		r := pgward(t, args...)
		r.check(t, exitOK, nil, nil)
		var res result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("prune --json: %v\n%s", err, r.stdout)
		}
		if res.Cluster != "main" || res.DryRun != dry || res.WindowSeconds != 7*86400 || res.Backups != 1 || res.WALObjects != 0 ||
			len(res.Deletions) != 1 || res.Deletions[0].Kind != "backup" || res.Deletions[0].Name != "20261001T000000Z" || res.Deletions[0].Reason == "" ||
			res.WALKeptFrom != "0/3000028" {
			t.Errorf("prune --json (dry %v): %+v", dry, res)
		}
	}
	r := pgward(t, "--repo", repoURL, "prune", "--dry-run")
	if !strings.Contains(r.stdout, "would delete 0 backups and 0 WAL objects; WAL kept from 0/3000028") {
		t.Errorf("prune after prune: %q", r.stdout)
	}
}
