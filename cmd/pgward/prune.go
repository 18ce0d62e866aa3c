package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "apply retention: delete backups and WAL the recovery window no longer needs",
		Description: `Keeps every base backup finished inside the retention window (the repository's
policy, 'pgward retention'; without one --retention-window, default 7 days), the newest
one finished before it (the base of the window's oldest second) and pinned
backups, and all WAL from the oldest kept backup's start; deletes the rest,
and failed backups (no backup.json) older than the window. Ordering uses the
recorded times and LSNs, never object names. A backup's backup.json goes
before its parts, so an interrupted prune never leaves a half-visible backup.
Takes the backup lock. --dry-run lists what would go and why.`,
		Flags: []cli.Flag{
			retentionWindowFlag("without a stored retention policy: the point-in-time recovery `WINDOW` to keep", "window"),
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be deleted, and why; delete nothing"},
		},
		Action: runPrune,
	}
}

func runPrune(c *cli.Context) error {
	now, err := clock()
	if err != nil {
		return err
	}
	a, log, err := archiveFor(c, false, false)
	if err != nil {
		return err
	}
	// backup.json steers what prune deletes: check who wrote it.
	trust, err := settingsFrom(c).trust()
	if err != nil {
		return err
	}
	a.Opener = seal.NewOpener(nil).SetTrust(trust)
	policy, err := retentionPolicy(c.Context, c, a.Store, a.Layout, "")
	if err != nil {
		return err
	}
	return prune(c.Context, a, log, now, policy.Window(), c.Bool("dry-run"), c.App.Writer)
}

// prune applies retention as of now(), printing each deletion and its
// reason. The clock also renews the lock prune holds.
func prune(ctx context.Context, a *archive.Archive, log *slog.Logger, now func() time.Time, window time.Duration, dryRun bool, out io.Writer) error {
	if !dryRun {
		release, err := basebackup.Lock(ctx, a.Store, a.Layout, now, log)
		if err != nil {
			return err
		}
		defer release()
	}
	backups, err := pruneBackups(ctx, a)
	if err != nil {
		return err
	}
	walObjs, err := pruneWAL(ctx, a)
	if err != nil {
		return err
	}
	plan := catalog.PlanPrune(backups, walObjs, now(), window)
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	for _, id := range plan.Backups {
		if !dryRun {
			if _, err := basebackup.Delete(ctx, a.Store, a.Layout, id); err != nil {
				return fmt.Errorf("delete backup %s: %w", id, err)
			}
		}
		fmt.Fprintf(out, "%s backup %s: %s\n", verb, id, plan.Reasons[id])
	}
	for _, key := range plan.WAL {
		if !dryRun {
			if err := a.Store.Delete(ctx, key); err != nil {
				return fmt.Errorf("delete %s: %w", key, err)
			}
		}
		fmt.Fprintf(out, "%s %s: %s\n", verb, key, plan.Reasons[key])
	}
	fmt.Fprintf(out, "%s %d backups and %d WAL objects; WAL kept from %s\n", verb, len(plan.Backups), len(plan.WAL), wal.LSN(plan.KeepFrom))
	return nil
}

// pruneBackups lists every backup, finished or not, with what retention
// needs to know of it.
func pruneBackups(ctx context.Context, a *archive.Archive) ([]catalog.PruneBackup, error) {
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
	var out []catalog.PruneBackup
	for _, id := range order {
		b := byID[id]
		var trust *seal.Trust
		if a.Opener != nil {
			trust = a.Opener.Trust()
		}
		listed, err := basebackup.Get(ctx, a.Store, a.Layout, id, trust)
		switch {
		case errors.Is(err, basebackup.ErrNoBackup):
		case err != nil:
			return nil, err // never guess about a backup that cannot be read
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

// pruneWAL lists the WAL objects retention may delete, with where their
// WAL ends. History files are never offered.
func pruneWAL(ctx context.Context, a *archive.Archive) ([]catalog.PruneWAL, error) {
	info, err := a.ClusterInfo(ctx)
	if err != nil {
		return nil, err
	}
	var out []catalog.PruneWAL
	err = a.ListWAL(ctx, func(f wal.FileName, _ string, oi storage.ObjectInfo) error {
		if f.Kind == wal.KindHistory {
			return nil
		}
		no, err := f.SegmentNo(info.WALSegmentSize)
		if err != nil {
			return nil
		}
		// A partial ends inside its segment; counting its segment's end
		// keeps it at least as long as the complete segment would be.
		out = append(out, catalog.PruneWAL{Key: oi.Key, End: uint64(wal.SegmentStart(no+1, info.WALSegmentSize))})
		return nil
	})
	return out, err
}
