package restore

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/inventory"
	"github.com/pgward/pgward/wal"
)

// Kind is what a recovery target names.
type Kind int

// The recovery targets restore takes (docs/operations.md §7).
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

// MaxRestorePointName is the longest restore point name, in bytes, that
// pg_create_restore_point creates and recovery_target_name accepts
// (MAXFNAMELEN - 1).
const MaxRestorePointName = 63

// MaxXID is the largest value recovery_target_xid holds: PostgreSQL
// parses 64 bits and keeps the low 32, so a larger number names another
// transaction.
const MaxXID = math.MaxUint32

// Validate refuses a target PostgreSQL would not read back as given:
// a restore point name that is empty, too long or holds control
// characters, and a transaction id outside 3..MaxXID.
func (t Target) Validate() error {
	switch t.Kind {
	case Latest, Time, LSN:
		return nil
	case XID:
		if t.XID < 3 {
			return fmt.Errorf("--to-xid %d: transaction ids start at 3 (0 to 2 are reserved)", t.XID)
		}
		if t.XID > MaxXID {
			return fmt.Errorf("--to-xid %d: recovery_target_xid holds a 32-bit transaction id (3 to %d); "+
				"a 64-bit id from txid_current() or pg_current_xact_id() carries the epoch in its high bits: give its low 32 bits (%d)",
				t.XID, uint64(MaxXID), t.XID&MaxXID)
		}
		return nil
	case Name:
		switch {
		case t.Name == "":
			return errors.New("--to-name is empty: give the name passed to pg_create_restore_point")
		case len(t.Name) > MaxRestorePointName:
			return fmt.Errorf("--to-name: %d bytes, but PostgreSQL restore point names are at most %d bytes: no restore point can have this name", len(t.Name), MaxRestorePointName)
		}
		if err := CheckConfValue(t.Name); err != nil {
			return fmt.Errorf("--to-name %s: %w", strconv.Quote(t.Name), err)
		}
		return nil
	}
	return fmt.Errorf("unknown recovery target kind %d", t.Kind)
}

// CheckConfValue refuses a value that cannot be written as one line of
// postgresql.auto.conf: one holding control characters (a newline would
// start a setting of its own) or invalid UTF-8.
func CheckConfValue(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("holds the control character %U at byte %d: refused, a recovery setting is one line", r, i)
		}
	}
	return nil
}

// ParseTime reads RFC 3339 or "YYYY-MM-DD HH:MM[:SS[.ffffff]][±TZ]" (a T
// for the space too); without a zone, the time is in loc.
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	// With a space or a T, with or without seconds (a DBA says "10:00").
	for _, sep := range []string{" ", "T"} {
		for _, clock := range []string{"15:04:05.999999999", "15:04"} {
			for _, zone := range []string{"Z07:00", "Z0700", "Z07"} {
				if t, err := time.Parse("2006-01-02"+sep+clock+zone, s); err == nil {
					return t, nil
				}
			}
			if t, err := time.ParseInLocation("2006-01-02"+sep+clock, s, loc); err == nil {
				return t, nil
			}
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 (2026-11-20T14:03:00+01:00) or 2026-11-20 14:03[:00[.ffffff]][+01]", s)
}

// Plan is what a restore will do.
type Plan struct {
	Backup   catalog.BackupInfo
	Target   Target
	Timeline uint32  // the newest timeline: recovery follows it
	WALFrom  wal.LSN // the backup's start: replay begins here
	WALTo    wal.LSN // the end of the stored WAL on the path
	Bytes    int64   // stored bytes of the backup to fetch
	// Tablespaces are where the backup's tablespaces go (PlanTablespaces
	// fills them: MakePlan does not know the data directory).
	Tablespaces []Tablespace
}

// ErrOutsideWindow is returned (wrapped) for a target the repository
// cannot reach.
var ErrOutsideWindow = errors.New("the target is outside the restorable window")

// MakePlan chooses the backup for target: the newest that finished before
// it, on the path of the newest timeline. backupID, if not empty, names
// the backup instead. It refuses a target outside the restorable window,
// with a message that states the window.
func MakePlan(st inventory.State, target Target, backupID string) (Plan, error) {
	if err := target.Validate(); err != nil {
		return Plan{}, err
	}
	if len(st.Backups) == 0 {
		return Plan{}, errors.New("the repository holds no finished base backup for this cluster: take one with 'pgward backup'")
	}
	last := st.Newest()
	tli, end, stored := last.Timeline, last.End, last.Stored
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
		if err := st.Refused[backupID]; backupID != "" && err != nil {
			return Plan{}, fmt.Errorf("backup %q cannot be restored: %w", backupID, err)
		}
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

// Tablespace is where a restore writes one tablespace archive, and where
// tablespace_map then points PostgreSQL.
type Tablespace struct {
	OID      string
	Dir      string // where its files go
	Recorded string // the location backup.json records
	Mapped   bool   // Dir comes from --tablespace-map
}

func (ts Tablespace) String() string {
	if ts.Mapped {
		return fmt.Sprintf("tablespace %s into %s (--tablespace-map; recorded at %s)", ts.OID, ts.Dir, orNone(ts.Recorded))
	}
	return fmt.Sprintf("tablespace %s into %s (its recorded location)", ts.OID, ts.Dir)
}

func orNone(s string) string {
	if s == "" {
		return "no location"
	}
	return strconv.Quote(s)
}

// ParseTablespaceMap reads --tablespace-map values, OID=DIR: OID a
// tablespace OID, DIR an absolute path without "..", cleaned.
func ParseTablespaceMap(specs []string) (map[string]string, error) {
	m := map[string]string{}
	for _, spec := range specs {
		oid, dir, ok := strings.Cut(spec, "=")
		if !ok {
			return nil, fmt.Errorf("--tablespace-map %s: want OID=/absolute/dir", strconv.Quote(spec))
		}
		if err := checkOID(oid); err != nil {
			return nil, fmt.Errorf("--tablespace-map %s: %w", strconv.Quote(spec), err)
		}
		if err := checkPathValue(dir); err != nil {
			return nil, fmt.Errorf("--tablespace-map %s: directory %w", strconv.Quote(spec), err)
		}
		if slices.Contains(strings.Split(dir, "/"), "..") {
			return nil, fmt.Errorf("--tablespace-map %s: the directory has a \"..\" element: give the path it means", strconv.Quote(spec))
		}
		if _, dup := m[oid]; dup {
			return nil, fmt.Errorf("--tablespace-map: tablespace %s is mapped twice", oid)
		}
		m[oid] = filepath.Clean(dir)
	}
	return m, nil
}

// checkOID accepts a tablespace OID as PostgreSQL writes it: decimal,
// 1 to 4294967295, no sign or leading zero.
func checkOID(oid string) error {
	n, err := strconv.ParseUint(oid, 10, 32)
	if err != nil || n == 0 || strconv.FormatUint(n, 10) != oid {
		return fmt.Errorf("%s is not a tablespace OID (a number like 16390: SELECT oid, spcname FROM pg_tablespace)", strconv.Quote(oid))
	}
	return nil
}

// checkPathValue accepts an absolute path that can be written into
// tablespace_map, a shell command and postgresql.auto.conf.
func checkPathValue(dir string) error {
	if dir == "" {
		return errors.New("is empty: give an absolute path")
	}
	if err := CheckConfValue(dir); err != nil {
		return fmt.Errorf("%s %w", strconv.Quote(dir), err)
	}
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s is not absolute: give an absolute path", strconv.Quote(dir))
	}
	return nil
}

// Directories of the operating system. Nothing is restored into the
// trees (at any depth); the plain directories may hold a restore target
// below them, but are never one.
var (
	systemTrees     = []string{"/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot", "/dev", "/proc", "/sys", "/run"}
	tablespaceTrees = append([]string{"/root", "/usr"}, systemTrees...)
	systemDirs      = []string{"/", "/home", "/var", "/var/lib", "/var/lib/postgresql", "/srv", "/opt", "/mnt", "/media", "/tmp", "/var/tmp", "/usr", "/usr/local", "/root"}
)

// checkSystemDir refuses a system directory, or a directory inside one
// of trees. dir is absolute and clean.
func checkSystemDir(dir string, trees []string) error {
	if slices.Contains(systemDirs, dir) || slices.Contains(trees, dir) {
		return fmt.Errorf("%s is a system directory: pgward never restores into it; give a directory of its own below it", dir)
	}
	for _, t := range trees {
		if within(dir, t) {
			return fmt.Errorf("%s is inside the system directory %s: pgward never restores there", dir, t)
		}
	}
	return nil
}

// within reports whether path is dir or below it (both clean, absolute).
func within(path, dir string) bool {
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// PlanTablespaces says where each tablespace archive of b is written:
// its recorded location, or tsMap[oid]. Each location must be absolute,
// clean, outside system directories and outside the data directory and
// every other location (and not contain them). Every OID in tsMap must
// be one of the backup's. It performs no I/O; CheckTablespaces looks at
// the directories themselves.
func PlanTablespaces(b catalog.BackupInfo, pgdata string, tsMap map[string]string) ([]Tablespace, error) {
	var out []Tablespace
	bases := 0
	seen := map[string]bool{}
	for _, a := range b.Archives {
		if a.Name == "base.tar" {
			bases++
			continue
		}
		oid, ok := strings.CutSuffix(a.Name, ".tar")
		if !ok || checkOID(oid) != nil {
			return nil, fmt.Errorf("backup %s: archive %s is neither base.tar nor OID.tar: refused", b.ID, strconv.Quote(a.Name))
		}
		if seen[oid] {
			return nil, fmt.Errorf("backup %s lists tablespace %s twice: refused", b.ID, oid)
		}
		seen[oid] = true
		ts := Tablespace{OID: oid, Dir: a.Tablespace, Recorded: a.Tablespace}
		if dir, ok := tsMap[oid]; ok {
			ts.Dir, ts.Mapped = dir, true
		}
		if ts.Dir == "" {
			return nil, fmt.Errorf("tablespace %s has no recorded location: give --tablespace-map %s=DIR", oid, oid)
		}
		if err := checkTablespaceDir(ts.Dir, pgdata); err != nil {
			return nil, fmt.Errorf("tablespace %s: %w; restore it elsewhere with --tablespace-map %s=DIR", oid, err, oid)
		}
		out = append(out, ts)
	}
	if bases != 1 {
		return nil, fmt.Errorf("backup %s has %d base.tar archives, want 1: refused", b.ID, bases)
	}
	var unknown []string
	for oid := range tsMap {
		if !seen[oid] {
			unknown = append(unknown, oid)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		has := "it has none"
		if len(seen) > 0 {
			has = "its tablespaces: " + strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
		}
		return nil, fmt.Errorf("--tablespace-map %s: backup %s has no such tablespace (%s)", strings.Join(unknown, ", "), b.ID, has)
	}
	for i, a := range out {
		for _, o := range out[i+1:] {
			if within(a.Dir, o.Dir) || within(o.Dir, a.Dir) {
				return nil, fmt.Errorf("tablespaces %s (%s) and %s (%s) overlap: give each its own directory with --tablespace-map OID=DIR", a.OID, a.Dir, o.OID, o.Dir)
			}
		}
	}
	// Where a restore writes, as root, must come from a writer it trusts:
	// an unsigned backup.json (or one read with no trusted signer) could
	// name /root/.ssh as a tablespace.
	for _, ts := range out {
		if !ts.Mapped && !b.Trusted {
			return nil, fmt.Errorf("backup %s: its backup.json is not signed by a --trusted-signer, so its location for tablespace %s (%s) is not trusted: "+
				"give --tablespace-map %s=DIR", b.ID, ts.OID, strconv.Quote(ts.Dir), ts.OID)
		}
	}
	return out, nil
}

// checkTablespaceDir is the textual check of one tablespace location.
func checkTablespaceDir(dir, pgdata string) error {
	if err := checkPathValue(dir); err != nil {
		return fmt.Errorf("location %w", err)
	}
	if filepath.Clean(dir) != dir {
		return fmt.Errorf("location %s is not a clean path (it would be %s)", strconv.Quote(dir), filepath.Clean(dir))
	}
	if err := checkSystemDir(dir, tablespaceTrees); err != nil {
		return err
	}
	switch {
	case within(dir, pgdata):
		return fmt.Errorf("%s is inside the data directory %s", dir, pgdata)
	case within(pgdata, dir):
		return fmt.Errorf("%s holds the data directory %s", dir, pgdata)
	}
	return nil
}
