package basebackup_test

import (
	"testing"
	"time"

	"github.com/pgward/pgward/basebackup"
)

func TestDefaultScheduleIsHalfPastMidnightInBerlin(t *testing.T) {
	s, err := basebackup.ParseSchedule(basebackup.DefaultSchedule, basebackup.DefaultTimezone)
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

func TestParseScheduleErrors(t *testing.T) {
	if _, err := basebackup.ParseSchedule("30 0 * *", "UTC"); err == nil {
		t.Error("a four-field schedule was accepted")
	}
	if _, err := basebackup.ParseSchedule("30 0 * * *", "Mars/Olympus"); err == nil {
		t.Error("an unknown time zone was accepted")
	}
}
