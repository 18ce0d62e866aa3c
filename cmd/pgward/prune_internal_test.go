package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
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

// A backup label file (segment.offset.backup) older than what retention
// keeps goes with the WAL around it.
func TestPruneDeletesOldBackupLabels(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	label := filepath.Join(t.TempDir(), "000000010000000000000001.00000028.backup")
	writeFile(t, label, []byte("START WAL LOCATION: 0/1000028 (file 000000010000000000000001)\nSTOP WAL LOCATION: 0/1000100 (file 000000010000000000000001)\n"))
	if r := pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", label); r.code != exitOK {
		t.Fatalf("wal-push of a backup label: %s", r.stderr)
	}
	putClusterBackup(t, dir, "main", "20261202T000000Z", time.Now().Add(-time.Hour)) // starts in segment 3
	r := pgward(t, "--repo", repoURL, "prune", "--dry-run")
	if !strings.Contains(r.stdout, "000000010000000000000001.00000028.backup") || !strings.Contains(r.stdout, "would delete 0 backups and 1 WAL objects") {
		t.Errorf("prune --dry-run with an old backup label:\n%s%s", r.stdout, r.stderr)
	}
}

// Shell completion asks with --generate-bash-completion last; it stays
// last, whatever option before it lacks its value, so the command is
// completed, never run.
func TestCompletionIsNeverRun(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	args := []string{"pgward", "backup", "delete", "ID", "--force", "--config-dir", "--generate-bash-completion"}
	got, err := hoistGlobalFlags(app, args)
	if err != nil || !slices.Equal(got, args) {
		t.Errorf("hoistGlobalFlags(%q) = %q, %v; want it unchanged", args, got, err)
	}
	isolate(t)
	dir, repoURL := fileRepo(t)
	putClusterBackup(t, dir, "main", "20261201T000000Z", time.Now().Add(-40*24*time.Hour))
	pgward(t, "--repo", repoURL, "backup", "delete", "20261201T000000Z", "--force", "--config-dir", "--generate-bash-completion")
	if got := listedIDs(t, "--repo", repoURL, "backup", "list", "--json"); len(got) != 1 {
		t.Errorf("completing a backup delete deleted it: %v", got)
	}
}
