// Package prune applies retention to one cluster: it lists what the
// repository holds, plans what the window no longer needs
// (catalog.PlanPrune, a pure function) and deletes it, under the backup
// lock, a backup's backup.json before its parts.
package prune

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/inventory"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Options say how to prune.
type Options struct {
	Window time.Duration
	DryRun bool
	// Now is the clock; it also renews the lock prune holds. Default
	// time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Deletion is one object (or backup) that goes, and why.
type Deletion struct {
	Kind   string `json:"kind"` // "backup" or "wal"
	Name   string `json:"name"` // the backup's id, or the WAL object's key
	Reason string `json:"reason"`
}

// Result is what a prune did (or, dry, would do). Its JSON form is
// 'pgward prune --json'.
type Result struct {
	Cluster       string     `json:"cluster"`
	DryRun        bool       `json:"dry_run"`
	WindowSeconds int64      `json:"window_seconds"`
	WALKeptFrom   string     `json:"wal_kept_from"`
	Backups       int        `json:"backups_deleted"`
	WALObjects    int        `json:"wal_objects_deleted"`
	Deletions     []Deletion `json:"deletions"`
}

// Summary is the result in one line.
func (r Result) Summary() string {
	verb := "deleted"
	if r.DryRun {
		verb = "would delete"
	}
	return fmt.Sprintf("%s %d backups and %d WAL objects; WAL kept from %s", verb, r.Backups, r.WALObjects, r.WALKeptFrom)
}

// Plan lists what the repository holds and plans the prune as of now.
func Plan(ctx context.Context, a *archive.Archive, now time.Time, window time.Duration) (catalog.PrunePlan, error) {
	backups, err := Backups(ctx, a)
	if err != nil {
		return catalog.PrunePlan{}, err
	}
	objects, _, err := inventory.Objects(ctx, a)
	if err != nil {
		return catalog.PrunePlan{}, err
	}
	walObjs := make([]catalog.PruneWAL, len(objects))
	for i, o := range objects {
		// A partial counts as its whole segment: kept as long as it would be.
		walObjs[i] = catalog.PruneWAL{Key: o.Key, End: uint64(o.SegmentEnd)}
	}
	return catalog.PlanPrune(backups, walObjs, now, window), nil
}

// Run takes the backup lock (unless dry), plans and deletes, calling
// deleted after each deletion (or, dry, for each it would make).
func Run(ctx context.Context, a *archive.Archive, opts Options, deleted func(Deletion)) (Result, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := Result{Cluster: a.Layout.Cluster, DryRun: opts.DryRun, WindowSeconds: int64(opts.Window / time.Second), Deletions: []Deletion{}}
	if opts.Window <= 0 {
		return res, fmt.Errorf("prune: window %s: want a positive duration", opts.Window)
	}
	if !opts.DryRun {
		release, err := basebackup.Lock(ctx, a.Store, a.Layout, now, log)
		if err != nil {
			return res, err
		}
		defer release()
	}
	plan, err := Plan(ctx, a, now(), opts.Window)
	if err != nil {
		return res, err
	}
	res.WALKeptFrom = wal.LSN(plan.KeepFrom).String()
	done := func(d Deletion) {
		res.Deletions = append(res.Deletions, d)
		if deleted != nil {
			deleted(d)
		}
	}
	for _, id := range plan.Backups {
		if !opts.DryRun {
			if _, err := basebackup.Delete(ctx, a.Store, a.Layout, id); err != nil {
				return res, fmt.Errorf("delete backup %s: %w", id, err)
			}
		}
		res.Backups++
		done(Deletion{Kind: "backup", Name: id, Reason: plan.Reasons[id]})
	}
	for _, key := range plan.WAL {
		if !opts.DryRun {
			if err := a.Store.Delete(ctx, key); err != nil {
				return res, fmt.Errorf("delete %s: %w", key, err)
			}
		}
		res.WALObjects++
		done(Deletion{Kind: "wal", Name: key, Reason: plan.Reasons[key]})
	}
	return res, nil
}

// Backups lists every backup, finished or not, with what retention needs
// to know of it. A backup.json that cannot be read stops the listing:
// prune never guesses about a backup.
func Backups(ctx context.Context, a *archive.Archive) ([]catalog.PruneBackup, error) {
	prefix := a.Layout.BackupsPrefix()
	byID := map[string]*catalog.PruneBackup{}
	var order []string
	err := a.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		id, _, ok := strings.Cut(strings.TrimPrefix(oi.Key, prefix), "/")
		if !ok {
			return nil // lock.json
		}
		b := byID[id]
		if b == nil {
			b = &catalog.PruneBackup{BackupSummary: catalog.BackupSummary{ID: id}}
			byID[id] = b
			order = append(order, id)
		}
		if oi.ModTime.After(b.Newest) {
			b.Newest = oi.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var trust *seal.Trust
	if a.Opener != nil {
		trust = a.Opener.Trust()
	}
	var out []catalog.PruneBackup
	for _, id := range order {
		b := byID[id]
		listed, err := basebackup.Get(ctx, a.Store, a.Layout, id, trust)
		switch {
		case errors.Is(err, basebackup.ErrNoBackup):
		case err != nil:
			return nil, err
		default:
			start, err := wal.ParseLSN(listed.StartLSN)
			if err != nil {
				return nil, fmt.Errorf("backup %s: %w", id, err)
			}
			b.Finished, b.StopTime, b.Pinned, b.StartLSN = true, listed.StopTime, listed.Pinned, uint64(start)
		}
		out = append(out, *b)
	}
	return out, nil
}
