package basebackup

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/robfig/cron/v3"
)

// Defaults of the sidecar's backup schedule: 00:30 every night, Berlin
// time (the hoster's 00:00–01:00 CET window).
const (
	DefaultSchedule = "30 0 * * *"
	DefaultTimezone = "Europe/Berlin"
)

// ParseSchedule reads a five-field cron expression in time zone tz.
func ParseSchedule(spec, tz string) (cron.Schedule, error) {
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("backup time zone %q: %w", tz, err)
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("backup schedule %q: %w (want five cron fields, like %q)", spec, err, DefaultSchedule)
	}
	return inZone{sched, loc}, nil
}

// inZone evaluates a schedule in a time zone.
type inZone struct {
	s   cron.Schedule
	loc *time.Location
}

func (z inZone) Next(t time.Time) time.Time { return z.s.Next(t.In(z.loc)) }

// Scheduler takes a backup at every time of its schedule.
type Scheduler struct {
	Schedule cron.Schedule
	Config   Config
	Logger   *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// OnFailure, if set, hears of every failed scheduled backup.
	OnFailure func(error)
}

// Run takes backups on schedule until ctx ends. A failed backup is logged
// and the next one is taken at its time; the lock keeps a backup started
// by hand and a scheduled one apart.
func (s *Scheduler) Run(ctx context.Context) error {
	now := s.Now
	if now == nil {
		now = time.Now
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		next := s.Schedule.Next(now())
		log.Info("next base backup scheduled", "at", next)
		timer := time.NewTimer(next.Sub(now()))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		info, err := Take(ctx, s.Config)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error("scheduled base backup failed", "err", err)
			if s.OnFailure != nil {
				s.OnFailure(err)
			}
			continue
		}
		log.Info("scheduled base backup done", "backup_id", info.ID, "bytes", info.DataBytes)
	}
}
