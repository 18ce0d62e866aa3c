// Package probe is the freshness probe: how old the newest archived WAL
// and base backup are, the restorable window, and gaps in the WAL chain,
// as a typed result that cmd maps to Nagios exit codes.
package probe

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/inventory"
	"github.com/pgward/pgward/wal"
)

// Status follows the Nagios plugin convention; its value is the exit code.
type Status int

// The statuses.
const (
	OK Status = iota
	Warning
	Critical
	Unknown
)

func (s Status) String() string {
	return [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}[s]
}

// Thresholds are the ages at which the probe warns and alarms.
type Thresholds struct {
	WALWarning, WALCritical       time.Duration
	BackupWarning, BackupCritical time.Duration
}

// DefaultThresholds are the defaults.
var DefaultThresholds = Thresholds{WALWarning: 5 * time.Minute, WALCritical: 15 * time.Minute,
	BackupWarning: 26 * time.Hour, BackupCritical: 50 * time.Hour}

// Result is what the probe found. Its JSON form is `pgward check --json`.
type Result struct {
	Status  Status   `json:"-"`
	State   string   `json:"status"`
	Reasons []string `json:"reasons"`
	WAL     *struct {
		Name string    `json:"name"`
		Time time.Time `json:"time"`
		Age  float64   `json:"age_seconds"`
	} `json:"newest_wal"`
	Backup *struct {
		ID   string    `json:"id"`
		Time time.Time `json:"time"`
		Age  float64   `json:"age_seconds"`
	} `json:"newest_backup"`
	Window *struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	} `json:"window"`
	Gaps []string `json:"gaps"`
}

func (r *Result) raise(s Status, reason string) {
	if s > r.Status {
		r.Status = s
	}
	if s != OK {
		r.Reasons = append(r.Reasons, reason)
	}
}

// Check probes the repository cluster at now.
func Check(ctx context.Context, a *archive.Archive, now time.Time, th Thresholds, window time.Duration) (r Result) {
	r.Gaps = []string{}
	defer func() { r.State = r.Status.String() }()
	st, err := inventory.Load(ctx, a)
	if err != nil {
		r.raise(Unknown, err.Error())
		return r
	}
	// Newest WAL: on the newest timeline, by stored time.
	newest := st.Newest()
	name := wal.SegmentName(newest.Timeline, wal.SegmentNo(newest.End-1, st.SegmentSize), st.SegmentSize)
	age := now.Sub(newest.Stored)
	r.WAL = &struct {
		Name string    `json:"name"`
		Time time.Time `json:"time"`
		Age  float64   `json:"age_seconds"`
	}{name, newest.Stored.UTC(), age.Seconds()}
	switch {
	case age >= th.WALCritical:
		r.raise(Critical, fmt.Sprintf("newest WAL %s is %s old", name, age.Round(time.Second)))
	case age >= th.WALWarning:
		r.raise(Warning, fmt.Sprintf("newest WAL %s is %s old", name, age.Round(time.Second)))
	}

	if len(st.Backups) == 0 {
		r.raise(Critical, "no finished base backup")
		return r
	}
	var sums []catalog.BackupSummary
	newestB := st.Backups[0]
	for _, b := range st.Backups {
		sums = append(sums, catalog.BackupSummary{ID: b.ID, StopTime: b.StopTime})
		if b.StopTime.After(newestB.StopTime) {
			newestB = b
		}
	}
	bage := now.Sub(newestB.StopTime)
	r.Backup = &struct {
		ID   string    `json:"id"`
		Time time.Time `json:"time"`
		Age  float64   `json:"age_seconds"`
	}{newestB.ID, newestB.StopTime.UTC(), bage.Seconds()}
	switch {
	case bage >= th.BackupCritical:
		r.raise(Critical, fmt.Sprintf("newest base backup %s is %s old", newestB.ID, bage.Round(time.Minute)))
	case bage >= th.BackupWarning:
		r.raise(Warning, fmt.Sprintf("newest base backup %s is %s old", newestB.ID, bage.Round(time.Minute)))
	}

	// The window starts at the oldest backup retention keeps.
	keep := catalog.KeepBackups(sums, now, window)
	var base *catalog.BackupInfo
	for i, b := range st.Backups {
		if keep[b.ID] && (base == nil || b.StopTime.Before(base.StopTime)) {
			base = &st.Backups[i]
		}
	}
	r.Window = &struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	}{base.StopTime.UTC(), newest.Stored.UTC()}

	if gaps := Gaps(st, *base); len(gaps) > 0 {
		r.Gaps = gaps
		more := ""
		if len(gaps) > 5 {
			more = fmt.Sprintf(" and %d more", len(gaps)-5)
		}
		r.raise(Critical, fmt.Sprintf("WAL chain broken: missing %s%s", strings.Join(gaps[:min(5, len(gaps))], ", "), more))
	}
	return r
}

// Gaps lists the segments missing between base's start and the newest
// stored WAL, along the newest timeline's history.
func Gaps(st inventory.State, base catalog.BackupInfo) []string {
	have := map[string]bool{}
	for _, o := range st.Objects {
		have[o.Name] = true
	}
	latest := st.Newest()
	segSize := st.SegmentSize
	tliAt := func(l wal.LSN) uint32 {
		for _, e := range st.History {
			if l < e.SwitchPoint {
				return e.Parent
			}
		}
		return latest.Timeline
	}
	start, _ := wal.ParseLSN(base.StartLSN)
	var gaps []string
	first, last := wal.SegmentNo(start, segSize), wal.SegmentNo(latest.End-1, segSize)
	for no := first; no <= last; no++ {
		tli := tliAt(wal.SegmentStart(no+1, segSize) - 1)
		name := wal.SegmentName(tli, no, segSize)
		if have[name] || no == last && have[name+wal.PartialSuffix] {
			continue
		}
		gaps = append(gaps, name)
	}
	return gaps
}
