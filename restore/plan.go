package restore

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/wal"
)

// Kind is what a recovery target names.
type Kind int

// The recovery targets of DESIGN.md "Restore (contract)".
const (
	Latest Kind = iota + 1
	Time
	LSN
	XID
	Name
)

// Target is where recovery stops.
type Target struct {
	Kind Kind
	Time time.Time
	LSN  wal.LSN
	XID  uint64
	Name string
}

func (t Target) String() string {
	switch t.Kind {
	case Time:
		return "time " + t.Time.UTC().Format("2006-01-02 15:04:05.999999Z07:00")
	case LSN:
		return "LSN " + t.LSN.String()
	case XID:
		return "transaction " + strconv.FormatUint(t.XID, 10)
	case Name:
		return "restore point " + strconv.Quote(t.Name)
	}
	return "the end of the archive"
}

// ParseTime reads RFC 3339 or "YYYY-MM-DD HH:MM:SS[.ffffff][±TZ]"; without
// a zone, the time is in loc.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999Z07",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if t, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, loc); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-11-20T14:03:00+01:00) or 2026-11-20 14:03:00[.ffffff][+01]", s)
}

// WALEnd is the newest WAL the repository holds on one timeline.
type WALEnd struct {
	Timeline uint32
	End      wal.LSN   // end of the newest segment or partial
	Stored   time.Time // when it was stored: no commit after this is in it
}

// State is what the repository holds, for planning.
type State struct {
	Backups []catalog.BackupInfo // finished backups
	WAL     []WALEnd             // per timeline
	// History of the newest timeline (from its history file); nil on
	// timeline 1.
	History []wal.HistoryEntry
}

// Plan is what a restore will do.
type Plan struct {
	Backup   catalog.BackupInfo
	Target   Target
	Timeline uint32  // the newest timeline: recovery follows it
	WALFrom  wal.LSN // the backup's start: replay begins here
	WALTo    wal.LSN // the end of the stored WAL on the path
	Bytes    int64   // stored bytes of the backup to fetch
}

// ErrOutsideWindow is returned (wrapped) for a target the repository
// cannot reach.
var ErrOutsideWindow = errors.New("the target is outside the restorable window")

// MakePlan chooses the backup for target: the newest that finished before
// it, on the path of the newest timeline. backupID, if not empty, names
// the backup instead. It refuses a target outside the restorable window,
// with a message that states the window.
func MakePlan(st State, target Target, backupID string) (Plan, error) {
	if len(st.Backups) == 0 {
		return Plan{}, errors.New("the repository holds no finished base backup for this cluster: take one with 'pgward backup'")
	}
	tli, end, stored := newestWAL(st.WAL)
	plan := Plan{Target: target, Timeline: tli, WALTo: end}

	// Backups whose WAL is on the path to the newest timeline.
	var usable []catalog.BackupInfo
	for _, b := range st.Backups {
		stop, _ := wal.ParseLSN(b.StopLSN)
		if onPath(b.StopTimeline, stop, tli, st.History) && stop <= end {
			usable = append(usable, b)
		}
	}
	if len(usable) == 0 {
		return Plan{}, fmt.Errorf("%w: no base backup ends before the newest stored WAL (%s on timeline %d)", ErrOutsideWindow, end, tli)
	}
	oldest, newest := usable[0], usable[0]
	for _, b := range usable {
		if b.StopTime.Before(oldest.StopTime) {
			oldest = b
		}
		if b.StopTime.After(newest.StopTime) {
			newest = b
		}
	}
	oldestStop, _ := wal.ParseLSN(oldest.StopLSN)
	window := fmt.Sprintf("the restorable window is %s to %s (LSN %s to %s on timeline %d)",
		oldest.StopTime.UTC().Format(time.RFC3339), stored.UTC().Format(time.RFC3339), oldestStop, end, tli)

	// The newest backup that ends before the target.
	fits := func(b catalog.BackupInfo) bool {
		stop, _ := wal.ParseLSN(b.StopLSN)
		switch target.Kind {
		case Time:
			return !b.StopTime.After(target.Time)
		case LSN:
			return stop <= target.LSN
		}
		return true // latest, xid, name: WAL positions are unknown before replay
	}
	switch target.Kind {
	case Time:
		if target.Time.Before(oldest.StopTime) || target.Time.After(stored) {
			return Plan{}, fmt.Errorf("%w: %s; %s", ErrOutsideWindow, target, window)
		}
	case LSN:
		if target.LSN < oldestStop || target.LSN > end {
			return Plan{}, fmt.Errorf("%w: %s; %s", ErrOutsideWindow, target, window)
		}
	}
	var chosen *catalog.BackupInfo
	for i, b := range usable {
		if backupID != "" {
			if b.ID == backupID {
				chosen = &usable[i]
			}
			continue
		}
		if fits(b) && (chosen == nil || b.StopTime.After(chosen.StopTime)) {
			chosen = &usable[i]
		}
	}
	if chosen == nil {
		if backupID != "" {
			return Plan{}, fmt.Errorf("backup %q is not a finished backup on the path to timeline %d (see 'pgward backup list')", backupID, tli)
		}
		return Plan{}, fmt.Errorf("%w: %s; %s", ErrOutsideWindow, target, window)
	}
	if backupID != "" && !fits(*chosen) {
		return Plan{}, fmt.Errorf("backup %s ends after the target (%s): choose an older one", backupID, target)
	}
	plan.Backup = *chosen
	plan.WALFrom, _ = wal.ParseLSN(chosen.StartLSN)
	plan.Bytes = chosen.StoredBytes
	return plan, nil
}

// newestWAL is the end of the WAL on the newest timeline.
func newestWAL(ends []WALEnd) (uint32, wal.LSN, time.Time) {
	var best WALEnd
	for _, e := range ends {
		if e.Timeline > best.Timeline {
			best = e
		}
	}
	return best.Timeline, best.End, best.Stored
}

// onPath reports whether WAL up to stop on timeline tli is on the path to
// timeline latest: tli is latest, or an ancestor left after stop.
func onPath(tli uint32, stop wal.LSN, latest uint32, history []wal.HistoryEntry) bool {
	if tli == latest {
		return true
	}
	for _, e := range history {
		if e.Parent == tli {
			return stop <= e.SwitchPoint
		}
	}
	return false
}

// Window is what can be restored on one timeline: from the end of its
// oldest backup to its newest stored WAL.
type Window struct {
	Timeline       uint32
	From, To       time.Time
	FromLSN, ToLSN wal.LSN
}

// Windows lists the restorable window of every timeline with WAL.
func Windows(st State) []Window {
	var out []Window
	for _, e := range st.WAL {
		w := Window{Timeline: e.Timeline, To: e.Stored, ToLSN: e.End}
		for _, b := range st.Backups {
			stop, _ := wal.ParseLSN(b.StopLSN)
			if b.StopTimeline != e.Timeline || stop > e.End {
				continue
			}
			if w.From.IsZero() || b.StopTime.Before(w.From) {
				w.From, w.FromLSN = b.StopTime, stop
			}
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timeline < out[j].Timeline })
	return out
}
