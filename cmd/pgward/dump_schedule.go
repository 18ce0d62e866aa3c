package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/internal/schedule"
)

// dumpSchedules prepares the sidecar's nightly dumps (each run followed
// by a prune) and weekly restore drills, when --dump-source is set; src
// and drillTarget are --dump-source and --drill-target, read with
// connFlag. It checks every setting before anything runs; start runs the
// schedules, owned by wg.
func dumpSchedules(c *cli.Context, src, drillTarget string, reg prometheus.Registerer, notify *notifier, log *slog.Logger) (start func(context.Context, *sync.WaitGroup), err error) {
	if src == "" {
		return func(context.Context, *sync.WaitGroup) {}, nil
	}
	tz := c.String("dump-timezone")
	sched, err := schedule.Parse(c.String("dump-schedule"), tz)
	if err != nil {
		return nil, fmt.Errorf("--dump-schedule: %w", err)
	}
	cat, err := dumpCatalog(c)
	if err != nil {
		return nil, err
	}
	cat.Logger = log
	s := settingsFrom(c)
	keys, err := dumpKeys(s, c.String("recipients-map"))
	if err != nil {
		return nil, err
	}
	// Fail at start on a retention the dumps cannot follow.
	if _, err := dumpPolicy(c.Context, c, cat, "dump-timezone"); err != nil {
		return nil, err
	}
	tools := dump.Tools{Dir: c.String("pg-bin")}
	cfg := dump.Config{Catalog: cat, Source: src, Globals: true, Keys: keys, Tools: tools, Retries: 3,
		PauseReplay: c.Bool("dump-pause-replay")}
	dumps := func(ctx context.Context, wg *sync.WaitGroup) {
		wg.Go(func() {
			schedule.Every(ctx, sched, "dump", log, func() {
				res, err := dump.Run(ctx, cfg)
				if ctx.Err() != nil {
					return // a shutdown
				}
				if err != nil {
					notify.failed(ctx, "dump", err)
					return
				}
				if err := res.Err(); err != nil {
					notify.failed(ctx, "dump", err)
					// Prune all the same: retention counts the dumps that
					// exist, so a database that keeps failing keeps its last
					// good ones, and the others are not held back.
				}
				// The policy is read each time: 'pgward retention set'
				// takes effect without a restart.
				policy, err := dumpPolicy(ctx, c, cat, "dump-timezone")
				if err != nil {
					notify.failed(ctx, "dump-prune", err)
					return
				}
				pres, err := cat.Prune(ctx, policy, time.Now(), false)
				if err != nil {
					notify.failed(ctx, "dump-prune", err)
					return
				}
				log.Info("scheduled dumps done", "dumps", len(res.Dumps), "pruned", len(pres.Deleted), "kept", len(pres.Kept))
			})
		})
	}

	spec := c.String("drill-schedule")
	if spec == "" {
		return dumps, nil
	}
	if s.IdentityFile == "" {
		log.Warn("restore drills are off: --drill-schedule needs --identity-file to decrypt dumps (a host that only archives holds public keys)")
		return dumps, nil
	}
	drillSched, err := schedule.Parse(spec, tz)
	if err != nil {
		return nil, fmt.Errorf("--drill-schedule: %w", err)
	}
	opener, err := s.opener()
	if err != nil {
		return nil, err
	}
	m := newDrillMetrics(reg)
	dcfg := dump.DrillConfig{Catalog: cat, Opener: opener, Target: drillTarget, Tools: tools}
	drills := func(ctx context.Context, wg *sync.WaitGroup) {
		wg.Go(func() {
			schedule.Every(ctx, drillSched, "drill", log, func() {
				rep, err := dump.Drill(ctx, dcfg)
				if ctx.Err() != nil {
					return // a shutdown, not a verdict on the dump
				}
				m.observe(rep)
				if err != nil {
					notify.failed(ctx, "dump-drill", err)
					return
				}
				log.Info("restore drill passed", "database", rep.Database, "dump_id", rep.DumpID, "tables", rep.TablesSeen, "rows", rep.RowsSeen)
			})
		})
	}
	return func(ctx context.Context, wg *sync.WaitGroup) { dumps(ctx, wg); drills(ctx, wg) }, nil
}
