package dump

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Policy is grandfather-father-son retention: the newest dump of each of
// the last Daily days, then of Weekly ISO weeks, then of Monthly months,
// in calendar buckets of Location. A dump kept by one rule does not count
// towards the next (as borg and restic's --keep-* do it): 7/4/12 keeps 23
// dumps once there is a year of history.
type Policy struct {
	Daily, Weekly, Monthly int
	Location               *time.Location
}

// DefaultPolicy keeps 7 daily, 4 weekly and 12 monthly dumps.
func DefaultPolicy(loc *time.Location) Policy {
	return Policy{Daily: 7, Weekly: 4, Monthly: 12, Location: loc}
}

// Validate refuses a policy that would keep nothing.
func (p Policy) Validate() error {
	if p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
		return errors.New("retention counts cannot be negative")
	}
	if p.Daily+p.Weekly+p.Monthly == 0 {
		return errors.New("a retention of 0 daily, 0 weekly and 0 monthly would delete every dump: keep at least one")
	}
	if p.Location == nil {
		return errors.New("retention needs a time zone")
	}
	return nil
}

// Dated is one dump as retention sees it.
type Dated struct {
	ID   string
	Time time.Time
}

// Keep returns the dumps of one database the policy keeps, each with the
// rule that keeps it ("daily 1/7").
func (p Policy) Keep(dumps []Dated) map[string]string {
	sorted := slices.Clone(dumps)
	slices.SortFunc(sorted, func(a, b Dated) int { return b.Time.Compare(a.Time) }) // newest first
	kept := map[string]string{}
	rules := []struct {
		name   string
		n      int
		period func(time.Time) string
	}{
		{"daily", p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }},
		{"weekly", p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{"monthly", p.Monthly, func(t time.Time) string { return t.Format("2006-01") }},
	}
	for _, r := range rules {
		if r.n == 0 {
			continue
		}
		last, count := "", 0
		for _, d := range sorted {
			period := r.period(d.Time.In(p.Location))
			if period == last {
				continue
			}
			last = period
			if _, ok := kept[d.ID]; ok {
				continue // its period is spoken for by an earlier rule
			}
			count++
			kept[d.ID] = fmt.Sprintf("%s %d/%d", r.name, count, r.n)
			if count == r.n {
				break
			}
		}
	}
	return kept
}
