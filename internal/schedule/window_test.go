package schedule

import (
	"strings"
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	at := func(day, hh, mm int) time.Time { return time.Date(2026, 12, day, hh, mm, 0, 0, berlin) }
	night, err := ParseWindow("22:00-06:00", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	day, _ := ParseWindow("09:30-17:00", "Europe/Berlin")
	for _, tc := range []struct {
		w      *Window
		t      time.Time
		inside bool
		end    time.Time
	}{
		{night, at(2, 21, 59), false, time.Time{}}, // before
		{night, at(2, 22, 0), true, at(3, 6, 0)},   // inside, the evening
		{night, at(3, 2, 30), true, at(3, 6, 0)},   // inside, after midnight
		{night, at(3, 6, 0), false, time.Time{}},   // after
		{night, at(3, 12, 0), false, time.Time{}},  // business hours
		{day, at(2, 9, 29), false, time.Time{}},
		{day, at(2, 9, 30), true, at(2, 17, 0)},
		{day, at(2, 17, 0), false, time.Time{}},
		{night, at(2, 23, 0).UTC(), true, at(3, 6, 0)}, // a time in another zone is read in the window's
	} {
		if got := tc.w.Contains(tc.t); got != tc.inside {
			t.Errorf("%s contains %s = %v, want %v", tc.w, tc.t, got, tc.inside)
		}
		if tc.inside && !tc.w.End(tc.t).Equal(tc.end) {
			t.Errorf("%s: end after %s = %s, want %s", tc.w, tc.t, tc.w.End(tc.t), tc.end)
		}
	}
	var none *Window
	if !none.Contains(at(2, 12, 0)) || !none.End(at(2, 12, 0)).IsZero() {
		t.Error("no window must allow any time, with no end")
	}
	// Across the night the clocks change in March: the end is still 06:00 local.
	spring := time.Date(2027, 3, 28, 1, 0, 0, 0, berlin)
	if end := night.End(spring); end.Hour() != 6 || end.In(berlin).Day() != 28 {
		t.Errorf("end across the DST change = %s", end)
	}
	for spec, want := range map[string]string{
		"22-06": "want HH:MM-HH:MM", "22:00": "want HH:MM-HH:MM", "25:00-06:00": "want HH:MM-HH:MM", "22:60-06:00": "want HH:MM-HH:MM",
		"06:00-06:00": "empty or the whole day", "00:00-24:00": "empty or the whole day", "22:00-06:00\n": "", "a:bc-06:00": "want HH:MM", "22:00\n-06:00": "want HH:MM", "22:00-\t06:00": "want HH:MM",
	} {
		_, err := ParseWindow(spec, "Europe/Berlin")
		if want == "" {
			if err != nil {
				t.Errorf("ParseWindow(%q): %v", spec, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseWindow(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
	if _, err := ParseWindow("22:00-06:00", "Mars/Base"); err == nil {
		t.Error("an unknown zone was accepted")
	}
	if w, _ := ParseWindow("", "Europe/Berlin"); w != nil {
		t.Error("an empty spec made a window")
	}
}

func TestPrev(t *testing.T) {
	s, _ := Parse("30 0 * * *", "UTC")
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if got := Prev(s, now); !got.Equal(time.Date(2026, 12, 2, 0, 30, 0, 0, time.UTC)) {
		t.Errorf("Prev = %s", got)
	}
	weekly, _ := Parse("0 6 * * 0", "UTC") // Sundays
	if got := Prev(weekly, now); got.Weekday() != time.Sunday || now.Sub(got) > 7*24*time.Hour {
		t.Errorf("Prev weekly = %s", got)
	}
}
