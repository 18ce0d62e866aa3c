package restore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/wal"
)

// Job is a planned restore to carry out: MakePlan and PlanTablespaces
// made Plan, and every refusal (CheckDataDir, CheckTablespaces,
// Recovery.Validate) has passed.
type Job struct {
	Archive       *archive.Archive
	Plan          Plan
	PGData        string
	TablespaceMap map[string]string
	Force         bool
	Jobs          int // parts downloaded ahead
	Recovery      Recovery
	// Files are written into the data directory (mode 0600) once the
	// backup is unpacked: restore_command's settings.
	Files map[string][]byte
	// Prefetch is how many segments after the backup's start are fetched
	// into wal-fetch's spool while the backup downloads, so recovery does
	// not begin with round trips; SpoolOrigin is what the spool is
	// claimed for (wal-fetch checks it).
	Prefetch    int
	SpoolOrigin string
	// Start starts PostgreSQL on the restored directory (on Port, when not
	// 0) and waits for recovery to end, at most StartTimeout.
	Start        bool
	Port         int
	StartTimeout time.Duration
	// Progress, when set, is told of the stored bytes read.
	Progress func(n int64)
	Logger   *slog.Logger
}

// Result is what a restore did.
type Result struct {
	Backup  string        `json:"backup"`
	PGData  string        `json:"pgdata"`
	Target  string        `json:"target"`
	Bytes   int64         `json:"stored_bytes"`
	Elapsed time.Duration `json:"-"`
	Started *Started      `json:"started,omitempty"`
}

// Execute carries out job: it prepares the data directory, fetches the
// first WAL while the backup downloads and unpacks, writes the recovery
// settings, marks the directory complete and, if asked, starts the
// server. A failure leaves IncompleteMarker in the directory.
func Execute(ctx context.Context, job Job) (Result, error) {
	begun := time.Now()
	log := job.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a, plan, pgdata := job.Archive, job.Plan, job.PGData
	res := Result{Backup: plan.Backup.ID, PGData: pgdata, Target: plan.Target.String(), Bytes: plan.Bytes}
	log.Info("restore started", "backup_id", plan.Backup.ID, "pgdata", pgdata)
	if err := Prepare(pgdata, plan.Backup.ID, job.Force); err != nil {
		return res, err
	}
	prefetchCtx, stopPrefetch := context.WithCancel(ctx)
	defer stopPrefetch()
	var prefetch sync.WaitGroup
	if job.Prefetch > 0 {
		prefetch.Go(func() {
			if err := prefetchWAL(prefetchCtx, a, job.SpoolOrigin, plan, pgdata, job.Prefetch); err != nil {
				log.Warn("early WAL prefetch stopped", "err", err)
			}
		})
	}
	err := Unpack(ctx, a.Store, a.Opener, plan.Backup, pgdata,
		UnpackOptions{TablespaceMap: job.TablespaceMap, Force: job.Force, Jobs: job.Jobs, Progress: job.Progress})
	if err != nil {
		stopPrefetch()
	}
	prefetch.Wait()
	if err != nil {
		return res, fmt.Errorf("%w (the directory is unusable: %s marks it)", err, IncompleteMarker)
	}
	for name, data := range job.Files {
		if filepath.Base(name) != name {
			return res, fmt.Errorf("restore: file %q is not a name in the data directory", name)
		}
		if err := os.WriteFile(filepath.Join(pgdata, name), data, 0o600); err != nil {
			return res, err
		}
	}
	if err := WriteRecovery(pgdata, job.Recovery); err != nil {
		return res, err
	}
	if err := Finish(pgdata); err != nil {
		return res, err
	}
	res.Elapsed = time.Since(begun)
	if !job.Start {
		return res, nil
	}
	if job.Port > 0 {
		if err := appendConf(pgdata, fmt.Sprintf("port = %d", job.Port)); err != nil {
			return res, err
		}
	}
	started, err := Start(ctx, pgdata, job.StartTimeout)
	if err != nil {
		return res, err
	}
	res.Started = &started
	res.Elapsed = time.Since(begun)
	return res, nil
}

func appendConf(pgdata, line string) error {
	f, err := os.OpenFile(filepath.Join(pgdata, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

// prefetchWAL fills wal-fetch's spool in pgdata with the segments that
// follow the backup's start, as wal-fetch's own prefetcher would.
func prefetchWAL(ctx context.Context, a *archive.Archive, origin string, plan Plan, pgdata string, count int) error {
	info, err := a.ClusterInfo(ctx)
	if err != nil {
		return err
	}
	spool := archive.Spool{Dir: filepath.Join(pgdata, "pg_wal", ".pgward-prefetch")}
	if err := spool.Claim(origin); err != nil { // the origin wal-fetch will check
		return err
	}
	first := wal.SegmentNo(plan.WALFrom, info.WALSegmentSize)
	if first == 0 {
		return nil
	}
	// The prefetcher fetches the segments after the one "wanted".
	if err := spool.Want(wal.SegmentName(plan.Backup.StartTimeline, first-1, info.WALSegmentSize)); err != nil {
		return err
	}
	return a.Prefetch(ctx, spool, count, info.WALSegmentSize)
}
