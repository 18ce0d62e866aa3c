// Package schedule runs the sidecar's jobs (base backups, prunes, dumps,
// drills) at the times of five-field cron expressions in a time zone.
package schedule

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule gives the next time of a job after a given time.
type Schedule = cron.Schedule

// Parse reads a five-field cron expression evaluated in time zone tz.
func Parse(spec, tz string) (Schedule, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", tz, err)
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("schedule %q: %w (want five cron fields, like \"30 0 * * *\")", spec, err)
	}
	return inZone{sched, loc}, nil
}

// inZone evaluates a schedule in a time zone.
type inZone struct {
	s   cron.Schedule
	loc *time.Location
}

func (z inZone) Next(t time.Time) time.Time { return z.s.Next(t.In(z.loc)) }

// Every runs job at each time of sched until ctx ends. A job reports its
// own failures; the next run comes at its time whatever happened.
func Every(ctx context.Context, sched Schedule, name string, log *slog.Logger, job func()) {
	for {
		next := sched.Next(time.Now())
		log.Info("next run scheduled", "job", name, "at", next)
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		job()
	}
}
