package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/internal/schedule"
	"github.com/pgward/pgward/jobs"
)

// dumpJobs declares the sidecar's nightly dumps (each run followed by a
// prune) and weekly restore drills, when --dump-source is set; src and
// drillTarget are --dump-source and --drill-target, read with connFlag.
// It checks every setting before anything runs; runner reports the
// prune that follows each dump run.
func dumpJobs(c *cli.Context, src, drillTarget string, reg prometheus.Registerer, runner *jobs.Runner, log *slog.Logger) ([]jobs.Job, error) {
	if src == "" {
		return nil, nil
	}
	tz := c.String("dump-timezone")
	sched, err := schedule.Parse(c.String("dump-schedule"), tz)
	if err != nil {
		return nil, fmt.Errorf("--dump-schedule: %w", err)
	}
	window, err := schedule.ParseWindow(c.String("dump-window"), tz)
	if err != nil {
		return nil, fmt.Errorf("--dump-window: %w", err)
	}
	windowEnd, err := jobs.ParseWindowEnd(c.String("dump-window-end"))
	if err != nil || windowEnd == jobs.Throttle {
		return nil, fmt.Errorf("--dump-window-end %q: want finish or stop", c.String("dump-window-end"))
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
	// A retention the dumps cannot follow is said at start, but stops
	// neither the WAL nor the dumps: each prune after them fails, notified.
	if _, err := dumpPolicy(c.Context, c, cat, "dump-timezone", true); err != nil {
		log.Error("scheduled dump prunes will fail until this is fixed", "err", err)
	}
	tools := dump.Tools{Dir: c.String("pg-bin")}
	cfg := dump.Config{Catalog: cat, Source: src, Globals: true, Keys: keys, Tools: tools, Retries: 3,
		PauseReplay: c.Bool("dump-pause-replay")}
	// The prune follows each dump run, even a failed one: retention counts
	// the dumps that exist, so a database that keeps failing keeps its
	// last good ones. The policy is read each time: 'pgward retention set'
	// takes effect without a restart.
	pruneJob := jobs.Job{Name: "dump-prune", Run: func(ctx context.Context) (jobs.Outcome, error) {
		policy, err := dumpPolicy(ctx, c, cat, "dump-timezone", true)
		if err != nil {
			return jobs.Outcome{}, err
		}
		pres, err := cat.Prune(ctx, policy, time.Now(), false)
		if err != nil {
			return jobs.Outcome{}, err
		}
		return jobs.Outcome{Note: fmt.Sprintf("kept %d dumps, deleted %d", len(pres.Kept), len(pres.Deleted))}, nil
	}}
	lastRun := func(ctx context.Context) (time.Time, error) {
		dumps, err := cat.List(ctx, "")
		var newest time.Time
		for _, d := range dumps {
			if d.StartTime.After(newest) {
				newest = d.StartTime
			}
		}
		return newest, err
	}
	out := []jobs.Job{{Name: "dump", Schedule: sched, Window: window, AtWindowEnd: windowEnd, LastRun: lastRun, Run: func(ctx context.Context) (jobs.Outcome, error) {
		res, err := dump.Run(ctx, cfg)
		if ctx.Err() == nil {
			runner.Once(ctx, pruneJob)
		}
		if err != nil {
			return jobs.Outcome{}, err
		}
		return dumpOutcome(res), res.Err()
	}}}
	spec := c.String("drill-schedule")
	if spec == "" {
		return out, nil
	}
	if s.IdentityFile == "" {
		log.Warn("restore drills are off: --drill-schedule needs --identity-file to decrypt dumps (a host that only archives holds public keys)")
		return out, nil
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
	out = append(out, jobs.Job{Name: "dump-drill", Schedule: drillSched, Run: func(ctx context.Context) (jobs.Outcome, error) {
		rep, err := dump.Drill(ctx, dcfg)
		if ctx.Err() == nil {
			m.observe(rep) // a shutdown is no verdict on the dump
		}
		return drillOutcome(rep), err
	}})
	return out, nil
}

// dumpOutcome is a dump run's outcome, one item per database.
func dumpOutcome(res *dump.Result) jobs.Outcome {
	var o jobs.Outcome
	for _, d := range res.Dumps {
		o.Bytes += d.StoredBytes
		o.Items = append(o.Items, jobs.Item{Name: d.Name(), Bytes: d.StoredBytes, Duration: d.EndTime.Sub(d.StartTime)})
	}
	for _, f := range res.Failed {
		o.Items = append(o.Items, jobs.Item{Name: f.Database, Err: f.Err})
	}
	o.Note = fmt.Sprintf("%d dumps, %d failed", len(res.Dumps), len(res.Failed))
	return o
}

// drillOutcome is a drill's outcome.
func drillOutcome(rep *dump.DrillReport) jobs.Outcome {
	if rep == nil || rep.DumpID == "" {
		return jobs.Outcome{}
	}
	return jobs.Outcome{Note: fmt.Sprintf("dump %s of %s: %d tables, %d rows", rep.DumpID, rep.Database, rep.TablesSeen, rep.RowsSeen)}
}
