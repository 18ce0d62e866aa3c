package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/internal/schedule"
	"github.com/pgward/pgward/jobs"
	"github.com/pgward/pgward/prune"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/stream"
)

func streamCommand() *cli.Command {
	return &cli.Command{
		Name:  "stream",
		Usage: "stream WAL from the primary over a replication slot into the repository (the sidecar)",
		Description: `Connects to the primary as a physical replication client, on the slot --slot
(created if missing), and stores every completed WAL segment in the repository
as wal-push would, plus, every --partial-interval, the segment being received
as <segment>.partial: losing the whole site then loses seconds of WAL, not a
segment. wal-fetch serves the newest partial when the complete segment is
missing.

The flush position reported to the server never passes what is stored, so the
slot keeps on the primary every byte not yet in the repository. Restarts,
kill -9, storage outages and lost connections need no action: streaming
resumes after the newest segment held. With several hosts
(host=a,b target_session_attrs=read-write) it follows a failover to the new
primary and its timeline.

--source takes a libpq connection string or URL; without it, the PG*
environment variables apply. The user needs the REPLICATION attribute.

Serves /metrics (Prometheus) and /healthz on --listen.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "source", EnvVars: []string{"PGWARD_SOURCE"}, Usage: "primary's connection `STRING` (libpq keywords or URL; PG* variables apply)"},
			&cli.StringFlag{Name: "slot", EnvVars: []string{"PGWARD_SLOT"}, Value: stream.DefaultSlot, Usage: "physical replication slot `NAME`"},
			&cli.StringFlag{Name: "spool-dir", EnvVars: []string{"PGWARD_STREAM_SPOOL_DIR"}, Usage: "local `DIR` for WAL not yet stored (default /var/lib/pgward/spool/<cluster>)"},
			&cli.DurationFlag{Name: "partial-interval", EnvVars: []string{"PGWARD_PARTIAL_INTERVAL"}, Value: stream.DefaultPartialInterval, Usage: "store the segment being received this often (`DURATION`; 0 turns it off)"},
			&cli.DurationFlag{Name: "status-interval", EnvVars: []string{"PGWARD_STATUS_INTERVAL"}, Value: 10 * time.Second, Usage: "report positions to the server this often"},
			&cli.StringFlag{Name: "spool-max", EnvVars: []string{"PGWARD_SPOOL_MAX"}, Value: "1GiB", Usage: "pause receiving when this much `SIZE` of WAL waits in the spool (the slot then holds it)"},
			&cli.StringFlag{Name: "listen", EnvVars: []string{"PGWARD_LISTEN"}, Value: "127.0.0.1:9087", Usage: "serve /metrics and /healthz on `ADDR` (empty: off; one port per sidecar when a host runs several)"},
			&cli.StringFlag{Name: "backup-source", EnvVars: []string{"PGWARD_BACKUP_SOURCE"}, Usage: "take base backups on schedule from the server at connection `STRING` (the replica); empty: no backups"},
			&cli.StringFlag{Name: "backup-schedule", EnvVars: []string{"PGWARD_BACKUP_SCHEDULE"}, Value: basebackup.DefaultSchedule, Usage: "when to take base backups (five cron `FIELDS`)"},
			&cli.StringFlag{Name: "backup-timezone", EnvVars: []string{"PGWARD_BACKUP_TIMEZONE"}, Value: basebackup.DefaultTimezone, Usage: "time `ZONE` of --backup-schedule"},
			&cli.StringFlag{Name: "backup-checkpoint", Value: "spread", Usage: "checkpoint `MODE` of scheduled backups: fast or spread"},
			&cli.StringFlag{Name: "backup-part-size", Value: "1GiB", Usage: "part `SIZE` of scheduled backups"},
			&cli.StringFlag{Name: "notify-url", EnvVars: []string{"PGWARD_NOTIFY_URL"}, Usage: "POST a JSON notice to `URL` when a scheduled job (backup, prune, dump, drill) fails (retried)"},
			&cli.BoolFlag{Name: "notify-success", Usage: "also notify each job's success, so a scheduler that went quiet is noticed"},
			&cli.StringFlag{Name: "prune-schedule", EnvVars: []string{"PGWARD_PRUNE_SCHEDULE"}, Value: "0 3 * * *", Usage: "apply retention at these times (five cron `FIELDS`, in --backup-timezone; empty: never)"},
			retentionWindowFlag("without a stored retention policy: the recovery `WINDOW` scheduled prunes keep", "prune-window"),
			&cli.StringFlag{Name: "dump-source", EnvVars: []string{"PGWARD_DUMP_SOURCE"}, Usage: "make logical dumps on schedule from the server at connection `STRING` (the replica); empty: no dumps"},
			&cli.StringFlag{Name: "dump-schedule", EnvVars: []string{"PGWARD_DUMP_SCHEDULE"}, Value: "0 0 * * *", Usage: "when to dump every database (five cron `FIELDS`, in --dump-timezone); old dumps are pruned after each run"},
			&cli.StringFlag{Name: "dump-timezone", EnvVars: []string{"PGWARD_DUMP_TIMEZONE"}, Value: basebackup.DefaultTimezone, Usage: "time `ZONE` of the dump and drill schedules and of dump retention's days"},
			&cli.StringFlag{Name: "recipients-map", EnvVars: []string{"PGWARD_RECIPIENTS_MAP"}, Usage: "YAML `FILE` naming each database's recipients (see pgward dump --help)"},
			&cli.BoolFlag{Name: "dump-pause-replay", EnvVars: []string{"PGWARD_DUMP_PAUSE_REPLAY"}, Usage: "pause WAL replay on the standby while each scheduled dump runs"},
			&cli.IntFlag{Name: "keep-daily", EnvVars: []string{"PGWARD_KEEP_DAILY"}, Value: 7, Usage: "dumps: keep the newest of each of the last `N` days"},
			&cli.IntFlag{Name: "keep-weekly", EnvVars: []string{"PGWARD_KEEP_WEEKLY"}, Value: 4, Usage: "dumps: then of `N` ISO weeks"},
			&cli.IntFlag{Name: "keep-monthly", EnvVars: []string{"PGWARD_KEEP_MONTHLY"}, Value: 12, Usage: "dumps: then of `N` months"},
			&cli.StringFlag{Name: "drill-schedule", EnvVars: []string{"PGWARD_DRILL_SCHEDULE"}, Value: "0 6 * * 0", Usage: "restore-drill a random dump of the last week at these times (needs --identity-file; empty: never)"},
			&cli.StringFlag{Name: "drill-target", EnvVars: []string{"PGWARD_DRILL_TARGET"}, Usage: "connection `STRING` of the server drills restore into (default: a throwaway local cluster)"},
			&cli.StringFlag{Name: "pg-bin", EnvVars: []string{"PGWARD_PG_BIN"}, Usage: "run pg_dump, pg_restore, initdb from `DIR`"},
			&cli.StringFlag{Name: "backup-window", Usage: "start scheduled backups only inside `HH:MM-HH:MM` (in --backup-timezone; e.g. 22:00-06:00, never in business hours); empty: any time"},
			&cli.StringFlag{Name: "backup-window-end", Value: "finish", Usage: "a scheduled backup still running when its window ends: `finish`, stop (it fails, and says so) or throttle (to --backup-throttle-rate)"},
			&cli.StringFlag{Name: "backup-throttle-rate", Value: "10MiB", Usage: "with --backup-window-end throttle: the `RATE` per second a backup goes on at after its window"},
			&cli.StringFlag{Name: "dump-window", Usage: "start scheduled dumps only inside `HH:MM-HH:MM` (in --dump-timezone); empty: any time"},
			&cli.StringFlag{Name: "dump-window-end", Value: "finish", Usage: "a dump run still going when its window ends: `finish` or stop"},
		}, slices.Concat(backupCompressionFlags("backup-"), backupRateFlags("backup-"))...),
		Action:       runStream,
		OnUsageError: flagUsageError,
	}
}

func runStream(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("stream takes no arguments, got %q", c.Args().First())
	}
	// Every connection string first: a refused password must stop the
	// sidecar before it serves or schedules anything.
	conns := map[string]string{}
	for _, name := range []string{"source", "backup-source", "dump-source", "drill-target"} {
		v, err := connFlag(c, name)
		if err != nil {
			return err
		}
		conns[name] = v
	}
	a, log, err := archiveFor(c, true, false)
	if err != nil {
		return err
	}
	layout := a.Layout
	connCfg, err := parseConn("source", conns["source"])
	if err != nil {
		return err
	}
	spoolMax, err := config.ParseSize(c.String("spool-max"))
	if err != nil {
		return fmt.Errorf("--spool-max: %w", err)
	}
	partial := c.Duration("partial-interval")
	if partial < 0 {
		return fmt.Errorf("--partial-interval %s: must not be negative", partial)
	}
	if partial == 0 {
		partial = -1 // off
	}
	spool := c.String("spool-dir")
	if spool == "" {
		spool = filepath.Join("/var/lib/pgward/spool", layout.Cluster)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	notify, err := newNotifier(c.String("notify-url"), layout.Cluster, c.Bool("notify-success"), log)
	if err != nil {
		return err
	}
	st, err := stream.New(stream.Config{
		Conn: connCfg, Slot: c.String("slot"), SpoolDir: spool,
		PartialInterval: partial, StatusInterval: c.Duration("status-interval"), SpoolMax: spoolMax,
		Archive: a, Logger: log, Metrics: stream.NewMetrics(reg),
	})
	if err != nil {
		return err
	}
	// Every schedule's settings are checked before anything starts: a bad
	// one must stop the sidecar before it serves or logs from goroutines.
	var backupSched, pruneSched schedule.Schedule // nil: off
	var bcfg basebackup.Config
	if src := conns["backup-source"]; src != "" {
		if backupSched, err = schedule.Parse(c.String("backup-schedule"), c.String("backup-timezone")); err != nil {
			return fmt.Errorf("--backup-schedule: %w", err)
		}
		if bcfg, err = newBackupConfig(c, a, log, "backup-", src); err != nil {
			return err
		}
	}
	tz := c.String("backup-timezone")
	backupWindow, err := schedule.ParseWindow(c.String("backup-window"), tz)
	if err != nil {
		return fmt.Errorf("--backup-window: %w", err)
	}
	backupWindowEnd, err := jobs.ParseWindowEnd(c.String("backup-window-end"))
	if err != nil {
		return fmt.Errorf("--backup-window-end %w", err)
	}
	throttleRate, err := uploadLimit(c, "backup-throttle-rate")
	if err != nil {
		return err
	}
	if spec := c.String("prune-schedule"); spec != "" {
		if pruneSched, err = schedule.Parse(spec, c.String("backup-timezone")); err != nil {
			return fmt.Errorf("--prune-schedule: %w", err)
		}
		// A retention prune cannot follow is said at start, but never
		// stops the WAL: each scheduled prune then fails, and is notified.
		if _, err := retentionPolicy(c.Context, c, a.Store, a.Layout, "dump-timezone", true); err != nil {
			log.Error("scheduled prunes will fail until this is fixed", "err", err)
		}
	}
	runner := &jobs.Runner{Logger: log, Metrics: jobs.NewMetrics(reg), Notify: notify}
	dumpSched, err := dumpJobs(c, conns["dump-source"], conns["drill-target"], reg, runner, log)
	if err != nil {
		return err
	}

	limitMemory(memoryLimit)
	var wg sync.WaitGroup
	defer wg.Wait()
	// Any return ends the helpers (metrics server, schedules) before the
	// wait above: a fatal stream error or a bad flag must exit, not hang
	// with /metrics up. (Deferred calls run last in, first out.)
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	if addr := c.String("listen"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			ok, why := st.Health()
			if !ok {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			fmt.Fprintln(w, why)
		})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http server failed", "err", err)
			}
		})
		wg.Go(func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		})
		log.Info("serving metrics", "addr", ln.Addr().String())
	}
	var scheduled []jobs.Job
	if backupSched != nil {
		// The lock keeps a backup started by hand and a scheduled one apart.
		limit := bcfg.Limiter.Limit() // --backup-upload-limit
		scheduled = append(scheduled, jobs.Job{Name: "backup", Schedule: backupSched, Window: backupWindow, AtWindowEnd: backupWindowEnd,
			Throttle: func() { bcfg.Limiter.SetLimit(min(limit, throttleRate)) },
			LastRun:  func(ctx context.Context) (time.Time, error) { return newestBackupStart(ctx, a) },
			Run: func(ctx context.Context) (jobs.Outcome, error) {
				bcfg.Limiter.SetLimit(limit) // a run before may have been throttled
				info, err := basebackup.Take(ctx, bcfg)
				if err != nil {
					return jobs.Outcome{}, err
				}
				return jobs.Outcome{Bytes: info.StoredBytes, Note: "backup " + info.ID}, nil
			}})
	}
	if pruneSched != nil {
		scheduled = append(scheduled, jobs.Job{Name: "prune", Schedule: pruneSched, Run: func(ctx context.Context) (jobs.Outcome, error) {
			// Read each time: 'pgward retention set' takes effect without
			// a restart.
			policy, err := retentionPolicy(ctx, c, a.Store, a.Layout, "dump-timezone", true)
			if err != nil {
				return jobs.Outcome{}, err
			}
			res, err := prune.Run(ctx, a, prune.Options{Window: policy.Window(), Logger: log}, nil)
			return jobs.Outcome{Note: res.Summary()}, err
		}})
	}
	runner.Start(ctx, &wg, append(scheduled, dumpSched...)...)
	log.Info("stream starting", "cluster", layout.Cluster, "slot", c.String("slot"), "spool", spool)
	return st.Run(ctx)
}

// newestBackupStart is when the newest backup began, finished or not
// (zero when there is none): when the backup job last ran.
func newestBackupStart(ctx context.Context, a *archive.Archive) (time.Time, error) {
	var trust *seal.Trust // only the times are read: they steer no deletion
	if a.Opener != nil {
		trust = a.Opener.Trust()
	}
	all, err := basebackup.ListAll(ctx, a.Store, a.Layout, trust, time.Now())
	if err != nil {
		return time.Time{}, err
	}
	var newest time.Time
	for _, b := range all {
		t := b.StartTime
		if t.IsZero() {
			t = b.LastWrite // a failed backup: when it last stored something
		}
		if t.After(newest) {
			newest = t
		}
	}
	return newest, nil
}
