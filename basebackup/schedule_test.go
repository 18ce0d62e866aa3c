package basebackup_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/internal/schedule"
)

func TestDefaultScheduleIsHalfPastMidnightInBerlin(t *testing.T) {
	s, err := schedule.Parse(basebackup.DefaultSchedule, basebackup.DefaultTimezone)
	if err != nil {
		t.Fatal(err)
	}
	now, _ := time.Parse(time.RFC3339, "2026-11-21T22:00:00Z")
	if got := s.Next(now).UTC().Format(time.RFC3339); got != "2026-11-21T23:30:00Z" {
		t.Errorf("Next = %s, want 23:30 UTC (00:30 CET)", got)
	}
}
