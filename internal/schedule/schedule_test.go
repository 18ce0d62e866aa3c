package schedule_test

import (
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/schedule"
)

func TestNextIsInTheZone(t *testing.T) {
	s, err := schedule.Parse("30 0 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ now, want string }{
		{"2026-11-21T22:00:00Z", "2026-11-21T23:30:00Z"}, // winter: CET = UTC+1
		{"2026-11-21T23:30:00Z", "2026-11-22T23:30:00Z"},
		{"2026-07-01T12:00:00Z", "2026-07-01T22:30:00Z"}, // summer: CEST = UTC+2
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		want, _ := time.Parse(time.RFC3339, tc.want)
		if got := s.Next(now); !got.Equal(want) {
			t.Errorf("Next(%s) = %s, want %s", tc.now, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := schedule.Parse("30 0 * *", "UTC"); err == nil || !strings.Contains(err.Error(), "five cron fields") {
		t.Errorf("a four-field schedule: %v", err)
	}
	if _, err := schedule.Parse("30 0 * * *", "Mars/Olympus"); err == nil || !strings.Contains(err.Error(), `time zone "Mars/Olympus"`) {
		t.Errorf("an unknown time zone: %v", err)
	}
}
