package schedule

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Window is a daily span of wall-clock time in a zone, such as
// "22:00-06:00" (across midnight), in which scheduled work may start: a
// backup never in business hours.
type Window struct {
	from, to int // minutes after midnight; to < from spans midnight
	loc      *time.Location
	spec     string
}

// ParseWindow reads "HH:MM-HH:MM" in time zone tz. An empty spec is no
// window (nil): work may start at any time.
func ParseWindow(spec, tz string) (*Window, error) {
	if spec == "" {
		return nil, nil
	}
	const want = `want HH:MM-HH:MM in the schedule's time zone, e.g. "22:00-06:00"`
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "" {
		return nil, fmt.Errorf("time zone %q: want an IANA zone such as Europe/Berlin", tz)
	}
	a, b, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok || strings.ContainsFunc(strings.TrimSpace(spec), unicode.IsControl) {
		return nil, fmt.Errorf("window %q: %s", spec, want)
	}
	from, err1 := clock(a)
	to, err2 := clock(b)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("window %q: %s", spec, want)
	}
	if from == to%(24*60) {
		return nil, fmt.Errorf("window %q is empty or the whole day: leave it out to allow any time", spec)
	}
	return &Window{from: from, to: to, loc: loc, spec: strings.TrimSpace(spec)}, nil
}

// clock reads HH:MM (24:00 for the end of the day).
func clock(s string) (int, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok || len(h) == 0 || len(h) > 2 || len(m) != 2 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh > 24 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("bad time %q", s)
	}
	return hh*60 + mm, nil
}

func (w *Window) String() string {
	if w == nil {
		return "any time"
	}
	return w.spec + " " + w.loc.String()
}

// Contains reports whether t falls inside the window. A nil window
// contains every time.
func (w *Window) Contains(t time.Time) bool {
	if w == nil {
		return true
	}
	lt := t.In(w.loc)
	m := lt.Hour()*60 + lt.Minute()
	if w.from < w.to {
		return m >= w.from && m < w.to
	}
	return m >= w.from || m < w.to
}

// End is when the window that contains t closes (the zero time for a nil
// window).
func (w *Window) End(t time.Time) time.Time {
	if w == nil {
		return time.Time{}
	}
	lt := t.In(w.loc)
	y, mo, d := lt.Date()
	if m := lt.Hour()*60 + lt.Minute(); w.from > w.to && m >= w.from {
		d++ // the window runs into tomorrow (time.Date normalizes)
	}
	// On the wall clock, so a change of daylight saving time in the night
	// still ends it at, say, 06:00.
	return time.Date(y, mo, d, w.to/60, w.to%60, 0, 0, w.loc)
}

// Prev returns the latest time of sched at or before now, looking back at
// most a week and a day (zero if none): the run a sidecar that was down
// may have missed.
func Prev(sched Schedule, now time.Time) time.Time {
	var prev time.Time
	for t := sched.Next(now.Add(-8 * 24 * time.Hour)); !t.IsZero() && !t.After(now); t = sched.Next(t) {
		prev = t
	}
	return prev
}
