// Package jobs runs pgward's jobs (backups, prunes, dumps, drills), each
// declared once as a Job, through one Runner that logs, times, counts and
// reports them: in the sidecar on their schedules, and once for a command
// run by hand or by cron (whose metrics then go to a textfile).
package jobs

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgward/pgward/internal/schedule"
)

// Item is a part of a job that monitoring follows on its own: one database
// of a dump run.
type Item struct {
	Name     string
	Bytes    int64
	Duration time.Duration
	Err      error
}

// Outcome is what a run of a job did.
type Outcome struct {
	Bytes int64  // stored (or read, for a verify)
	Note  string // one line for the log and a success notice
	Items []Item
}

// Job is one kind of work. Schedule is nil for a job run once.
type Job struct {
	Name     string
	Schedule schedule.Schedule
	Run      func(ctx context.Context) (Outcome, error)
}

// Notifier is told of each run's end.
type Notifier interface {
	Failed(ctx context.Context, job string, err error)
	Succeeded(ctx context.Context, job, note string)
}

// Metrics are the jobs' outcomes for Prometheus.
type Metrics struct {
	lastRun, lastSuccess, lastDuration, lastBytes, lastOK *prometheus.GaugeVec
	failures                                              *prometheus.CounterVec
	itemLastSuccess, itemBytes, itemDuration, itemOK      *prometheus.GaugeVec
}

// NewMetrics registers the jobs' metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pgward", Name: name, Help: help}, labels)
	}
	m := &Metrics{
		lastRun:         gauge("job_last_run_timestamp_seconds", "When the job's last run ended.", "job"),
		lastSuccess:     gauge("job_last_success_timestamp_seconds", "When the job's last successful run ended.", "job"),
		lastDuration:    gauge("job_last_duration_seconds", "How long the job's last run took.", "job"),
		lastBytes:       gauge("job_last_bytes", "Bytes the job's last successful run stored (a verify: read).", "job"),
		lastOK:          gauge("job_last_ok", "1 if the job's last run succeeded, 0 if it failed.", "job"),
		failures:        prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgward", Name: "scheduled_job_failures_total", Help: "Failed runs of pgward's jobs (backup, prune, dump, dump-prune, dump-drill, verify)."}, []string{"job"}),
		itemLastSuccess: gauge("job_item_last_success_timestamp_seconds", "When the job last succeeded for this item (a database of a dump run).", "job", "item"),
		itemBytes:       gauge("job_item_last_bytes", "Bytes of the item's last successful run.", "job", "item"),
		itemDuration:    gauge("job_item_last_duration_seconds", "How long the item's last run took.", "job", "item"),
		itemOK:          gauge("job_item_last_ok", "1 if the item's last run succeeded, 0 if it failed.", "job", "item"),
	}
	reg.MustRegister(m.lastRun, m.lastSuccess, m.lastDuration, m.lastBytes, m.lastOK, m.failures,
		m.itemLastSuccess, m.itemBytes, m.itemDuration, m.itemOK)
	return m
}

// Runner runs jobs and reports them.
type Runner struct {
	Logger  *slog.Logger
	Metrics *Metrics // nil: none
	Notify  Notifier // nil: none
	Now     func() time.Time
	// Interactive is a run by hand: the command prints the outcome and
	// the error itself, so the runner logs them only at debug level.
	Interactive bool
}

func (r *Runner) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Once runs job and reports its outcome. A run cut short by the end of ctx
// (a shutdown) is logged but neither counted nor notified: it is no verdict
// on the job.
func (r *Runner) Once(ctx context.Context, job Job) (Outcome, error) {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	begun := r.now()
	out, err := job.Run(ctx)
	end := r.now()
	took := end.Sub(begun)
	if err != nil && ctx.Err() != nil {
		log.Warn("job stopped by shutdown", "job", job.Name, "err", err)
		return out, err
	}
	if m := r.Metrics; m != nil {
		m.lastRun.WithLabelValues(job.Name).Set(float64(end.Unix()))
		m.lastDuration.WithLabelValues(job.Name).Set(took.Seconds())
		if err == nil {
			m.lastSuccess.WithLabelValues(job.Name).Set(float64(end.Unix()))
			m.lastBytes.WithLabelValues(job.Name).Set(float64(out.Bytes))
			m.lastOK.WithLabelValues(job.Name).Set(1)
		} else {
			m.lastOK.WithLabelValues(job.Name).Set(0)
			m.failures.WithLabelValues(job.Name).Inc()
		}
		for _, it := range out.Items {
			m.itemDuration.WithLabelValues(job.Name, it.Name).Set(it.Duration.Seconds())
			if it.Err == nil {
				m.itemLastSuccess.WithLabelValues(job.Name, it.Name).Set(float64(end.Unix()))
				m.itemBytes.WithLabelValues(job.Name, it.Name).Set(float64(it.Bytes))
				m.itemOK.WithLabelValues(job.Name, it.Name).Set(1)
			} else {
				m.itemOK.WithLabelValues(job.Name, it.Name).Set(0)
			}
		}
	}
	doneLevel, failLevel := slog.LevelInfo, slog.LevelError
	if r.Interactive {
		doneLevel, failLevel = slog.LevelDebug, slog.LevelDebug
	}
	if err != nil {
		log.Log(ctx, failLevel, "job failed", "job", job.Name, "duration", took.Round(time.Millisecond).String(), "err", err)
		if r.Notify != nil {
			r.Notify.Failed(ctx, job.Name, err)
		}
		return out, err
	}
	log.Log(ctx, doneLevel, "job done", "job", job.Name, "duration", took.Round(time.Millisecond).String(), "bytes", out.Bytes, "note", out.Note)
	if r.Notify != nil {
		r.Notify.Succeeded(ctx, job.Name, out.Note)
	}
	return out, nil
}

// Start runs each scheduled job at its times until ctx ends, in
// goroutines wg waits for. Runs of one job never overlap; a run that
// outlasts its next time is followed by the one after.
func (r *Runner) Start(ctx context.Context, wg *sync.WaitGroup, jobs ...Job) {
	for _, job := range jobs {
		if job.Schedule == nil {
			continue
		}
		wg.Go(func() {
			log := r.Logger
			if log == nil {
				log = slog.New(slog.DiscardHandler)
			}
			schedule.Every(ctx, job.Schedule, job.Name, log, func() { r.Once(ctx, job) })
		})
	}
}
