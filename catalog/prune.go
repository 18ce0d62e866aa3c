package catalog

import (
	"fmt"
	"sort"
	"time"
)

// PruneBackup is a backup as retention sees it.
type PruneBackup struct {
	BackupSummary
	StartLSN uint64 // where its WAL begins
	Finished bool   // false: parts without backup.json (a failed backup)
	Newest   time.Time
}

// PruneWAL is a WAL object as retention sees it: End is the LSN its WAL
// ends at (a segment's end; a partial's recorded end); history files are
// never offered for deletion.
type PruneWAL struct {
	Key string
	End uint64
}

// PrunePlan is what prune deletes, with the reason for each.
type PrunePlan struct {
	Backups  []string          // ids, oldest first
	WAL      []string          // keys
	Reasons  map[string]string // id or key → why it goes
	KeepFrom uint64            // WAL from here on is kept
}

// PlanPrune applies retention (docs/operations.md §9): keep every backup finished
// inside the window, the newest finished before it, and pinned ones; keep
// all WAL from the oldest kept backup's start; delete the rest. Failed
// backups older than the window go too. Everything is ordered by recorded
// times and LSNs, never by names. Without a kept backup nothing is deleted.
func PlanPrune(backups []PruneBackup, wal []PruneWAL, now time.Time, window time.Duration) PrunePlan {
	plan := PrunePlan{Reasons: map[string]string{}}
	var finished []BackupSummary
	for _, b := range backups {
		if b.Finished {
			finished = append(finished, b.BackupSummary)
		}
	}
	keep := KeepBackups(finished, now, window)
	if len(keep) == 0 {
		return plan
	}
	plan.KeepFrom = ^uint64(0)
	for _, b := range backups {
		if b.Finished && keep[b.ID] {
			plan.KeepFrom = min(plan.KeepFrom, b.StartLSN)
		}
	}
	start := now.Add(-window)
	sorted := append([]PruneBackup(nil), backups...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].StopTime.Before(sorted[j].StopTime) })
	for _, b := range sorted {
		switch {
		case b.Finished && !keep[b.ID]:
			plan.Backups = append(plan.Backups, b.ID)
			plan.Reasons[b.ID] = fmt.Sprintf("finished %s, before the window (from %s), and a newer backup is its base", b.StopTime.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
		case !b.Finished && b.Newest.Before(start):
			plan.Backups = append(plan.Backups, b.ID)
			plan.Reasons[b.ID] = fmt.Sprintf("unfinished (no backup.json), last written %s", b.Newest.UTC().Format(time.RFC3339))
		}
	}
	for _, w := range wal {
		if w.End <= plan.KeepFrom {
			plan.WAL = append(plan.WAL, w.Key)
			plan.Reasons[w.Key] = "ends before the oldest kept backup starts"
		}
	}
	return plan
}
