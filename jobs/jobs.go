// Package jobs runs pgward's jobs (backups, prunes, dumps, drills), each
// declared once as a Job, through one Runner that logs, times, counts and
// reports them: in the sidecar on their schedules, and once for a command
// run by hand or by cron (whose metrics then go to a textfile).
package jobs

import (
	"context"
	"errors"
	"fmt"
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
	// Window, when set, is when a scheduled run may start (never in
	// business hours); a run still going at its end is handled as
	// AtWindowEnd says.
	Window      *schedule.Window
	AtWindowEnd WindowEnd
	// Throttle is called at the window's end with AtWindowEnd Throttle.
	Throttle func()
	// LastRun, when set, says when the job last ran, successfully or not
	// (its newest backup, failed ones too, or dump): a scheduled time
	// missed since, while the sidecar was down, is run once at start, as
	// late. A failed run counts as a run, so a sidecar that restarts again
	// and again does not start a backup each time.
	LastRun func(ctx context.Context) (time.Time, error)
}

// WindowEnd is what becomes of a run still going when its window ends.
type WindowEnd int

// What a run does at its window's end. Each is reported.
const (
	Finish   WindowEnd = iota // it goes on
	Stop                      // it is stopped, and fails
	Throttle                  // it goes on, slower (Job.Throttle)
)

// ParseWindowEnd reads finish, stop or throttle.
func ParseWindowEnd(s string) (WindowEnd, error) {
	switch s {
	case "finish", "":
		return Finish, nil
	case "stop":
		return Stop, nil
	case "throttle":
		return Throttle, nil
	}
	return 0, fmt.Errorf("%q: want finish, stop or throttle", s)
}

// errWindowEnded is the cause a run is stopped with at its window's end.
var errWindowEnded = errors.New("stopped at the end of its window")

// Notifier is told of each run's end.
type Notifier interface {
	Failed(ctx context.Context, job string, err error)
	Succeeded(ctx context.Context, job, note string)
}

// Metrics are the jobs' outcomes for Prometheus.
type Metrics struct {
	lastRun, lastSuccess, lastDuration, lastBytes, lastOK *prometheus.GaugeVec
	failures, skipped, late, overran                      *prometheus.CounterVec
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
		skipped:         prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgward", Name: "job_skipped_total", Help: "Scheduled runs not started because the time was outside the job's window."}, []string{"job"}),
		late:            prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgward", Name: "job_late_runs_total", Help: "Runs made at start for a scheduled time missed while the sidecar was down."}, []string{"job"}),
		overran:         prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "pgward", Name: "job_window_overruns_total", Help: "Runs still going at the end of the job's window (then finished, stopped or throttled as configured)."}, []string{"job"}),
		itemLastSuccess: gauge("job_item_last_success_timestamp_seconds", "When the job last succeeded for this item (a database of a dump run).", "job", "item"),
		itemBytes:       gauge("job_item_last_bytes", "Bytes of the item's last successful run.", "job", "item"),
		itemDuration:    gauge("job_item_last_duration_seconds", "How long the item's last run took.", "job", "item"),
		itemOK:          gauge("job_item_last_ok", "1 if the item's last run succeeded, 0 if it failed.", "job", "item"),
	}
	reg.MustRegister(m.lastRun, m.lastSuccess, m.lastDuration, m.lastBytes, m.lastOK, m.failures, m.skipped, m.late, m.overran,
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
	// AfterFunc is time.AfterFunc, for tests.
	AfterFunc func(time.Duration, func()) (stop func() bool)
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Runner) afterFunc(d time.Duration, f func()) func() bool {
	if r.AfterFunc != nil {
		return r.AfterFunc(d, f)
	}
	return time.AfterFunc(d, f).Stop
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
	return r.once(ctx, ctx, job)
}

// once runs job in runCtx, which its window's end may cancel; ctx is the
// sidecar's, whose end is a shutdown.
func (r *Runner) once(ctx, runCtx context.Context, job Job) (Outcome, error) {
	log := r.log()
	begun := r.now()
	out, err := job.Run(runCtx)
	end := r.now()
	took := end.Sub(begun)
	if err != nil && ctx.Err() != nil {
		log.Warn("job stopped by shutdown", "job", job.Name, "err", err)
		return out, err
	}
	if err != nil && errors.Is(context.Cause(runCtx), errWindowEnded) {
		err = fmt.Errorf("%w %s: %w", errWindowEnded, job.Window, err)
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
			r.catchUp(ctx, job)
			schedule.Every(ctx, job.Schedule, job.Name, r.log(), func() { r.Scheduled(ctx, job) })
		})
	}
}

// catchUp runs job once now if it has not run since its last scheduled
// time (the sidecar was down then), and says it is late.
func (r *Runner) catchUp(ctx context.Context, job Job) {
	if job.LastRun == nil || job.Schedule == nil {
		return
	}
	now := r.now()
	prev := schedule.Prev(job.Schedule, now)
	last, err := job.LastRun(ctx)
	if err != nil {
		r.log().Warn("cannot tell whether a scheduled run was missed", "job", job.Name, "err", err)
		return
	}
	if prev.IsZero() || !last.Before(prev) {
		return
	}
	if !job.Window.Contains(now) {
		r.log().Warn("a scheduled run was missed; outside its window now, it waits for its next time",
			"job", job.Name, "missed", prev, "last_run", last, "window", job.Window.String())
		return
	}
	r.log().Warn("late run: a scheduled time was missed while pgward was down", "job", job.Name, "missed", prev, "last_run", last)
	if r.Metrics != nil {
		r.Metrics.late.WithLabelValues(job.Name).Inc()
	}
	r.Scheduled(ctx, job)
}

// Scheduled is a run at its time: not started outside the job's window,
// and at the window's end finished, stopped or throttled.
func (r *Runner) Scheduled(ctx context.Context, job Job) {
	now := r.now()
	if !job.Window.Contains(now) {
		r.log().Warn("scheduled run skipped: outside its window", "job", job.Name, "window", job.Window.String())
		if r.Metrics != nil {
			r.Metrics.skipped.WithLabelValues(job.Name).Inc()
		}
		return
	}
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// In the autumn's repeated hour the window's end may read as past:
	// then the run is let finish rather than stopped at once.
	if end := job.Window.End(now); job.Window != nil && end.After(now) {
		stop := r.afterFunc(end.Sub(now), func() {
			if r.Metrics != nil {
				r.Metrics.overran.WithLabelValues(job.Name).Inc()
			}
			switch {
			case job.AtWindowEnd == Stop:
				r.log().Warn("job still running at the end of its window: stopping it", "job", job.Name, "window", job.Window.String())
				cancel(errWindowEnded)
			case job.AtWindowEnd == Throttle && job.Throttle != nil:
				r.log().Warn("job still running at the end of its window: throttling it", "job", job.Name, "window", job.Window.String())
				job.Throttle()
			default:
				r.log().Warn("job still running at the end of its window: letting it finish", "job", job.Name, "window", job.Window.String())
			}
		})
		// The timer ends with the run, not with its notices (which may
		// retry for a minute): a run done in time never counts as late.
		run := job.Run
		job.Run = func(ctx context.Context) (Outcome, error) {
			out, err := run(ctx)
			stop()
			return out, err
		}
	}
	r.once(ctx, runCtx, job)
}
