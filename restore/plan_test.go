package restore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/inventory"
	"github.com/pgward/pgward/restore"
	"github.com/pgward/pgward/wal"
)

func lsn(s string) wal.LSN { l, _ := wal.ParseLSN(s); return l }

var t0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func backup(id string, hours int, start, stop string, tli uint32) catalog.BackupInfo {
	return catalog.BackupInfo{ID: id, StartLSN: start, StopLSN: stop, StartTimeline: tli, StopTimeline: tli,
		StartTime: t0.Add(time.Duration(hours)*time.Hour - time.Minute), StopTime: t0.Add(time.Duration(hours) * time.Hour), StoredBytes: 100}
}

func TestMakePlan(t *testing.T) {
	st := inventory.State{
		Backups: []catalog.BackupInfo{
			backup("B1", 1, "0/2000028", "0/2000100", 1),
			backup("B2", 5, "0/6000028", "0/6000100", 1),
			backup("B3", 9, "0/9000028", "0/9000100", 2), // after a failover at 0/8000000
		},
		WAL:     []inventory.WALEnd{{Timeline: 1, End: lsn("0/8000000"), Stored: t0.Add(7 * time.Hour)}, {Timeline: 2, End: lsn("0/C000000"), Stored: t0.Add(12 * time.Hour)}},
		History: []wal.HistoryEntry{{Parent: 1, SwitchPoint: lsn("0/80000A0")}},
	}
	for _, tc := range []struct {
		name    string
		target  restore.Target
		id      string
		want    string // chosen backup
		wantErr string
	}{
		{"time between backups takes the older", restore.Target{Kind: restore.Time, Time: t0.Add(4 * time.Hour)}, "", "B1", ""},
		{"time right at a backup's end takes it", restore.Target{Kind: restore.Time, Time: t0.Add(5 * time.Hour)}, "", "B2", ""},
		{"time after the failover", restore.Target{Kind: restore.Time, Time: t0.Add(10 * time.Hour)}, "", "B3", ""},
		{"latest takes the newest", restore.Target{Kind: restore.Latest}, "", "B3", ""},
		{"lsn picks by position", restore.Target{Kind: restore.LSN, LSN: lsn("0/7000000")}, "", "B2", ""},
		{"xid takes the newest (positions unknown)", restore.Target{Kind: restore.XID, XID: 1234}, "", "B3", ""},
		{"override", restore.Target{Kind: restore.Time, Time: t0.Add(10 * time.Hour)}, "B1", "B1", ""},
		{"override ending after the target", restore.Target{Kind: restore.Time, Time: t0.Add(2 * time.Hour)}, "B2", "", "ends after the target"},
		{"unknown override", restore.Target{Kind: restore.Latest}, "B9", "", "not a finished backup"},
		{"before the window", restore.Target{Kind: restore.Time, Time: t0}, "", "", "restorable window is 2026-11-20T01:00:00Z to 2026-11-20T12:00:00Z"},
		{"after the window", restore.Target{Kind: restore.Time, Time: t0.Add(13 * time.Hour)}, "", "", "outside the restorable window"},
		{"lsn past the stored WAL", restore.Target{Kind: restore.LSN, LSN: lsn("0/D000000")}, "", "", "outside the restorable window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plan, err := restore.MakePlan(st, tc.target, tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("MakePlan = %s, %v; want an error containing %q", plan.Backup.ID, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if plan.Backup.ID != tc.want || plan.Timeline != 2 || plan.WALTo != lsn("0/C000000") {
				t.Fatalf("plan = %s on timeline %d to %s, want %s on 2 to 0/C000000", plan.Backup.ID, plan.Timeline, plan.WALTo, tc.want)
			}
		})
	}
}

// A backup on the old timeline past the switch point is not on the path.
func TestMakePlanSkipsBackupsOffThePath(t *testing.T) {
	st := inventory.State{
		Backups: []catalog.BackupInfo{backup("B1", 1, "0/2000028", "0/2000100", 1), backup("OFF", 8, "0/9000028", "0/9000100", 1)},
		WAL:     []inventory.WALEnd{{Timeline: 2, End: lsn("0/C000000"), Stored: t0.Add(12 * time.Hour)}},
		History: []wal.HistoryEntry{{Parent: 1, SwitchPoint: lsn("0/80000A0")}},
	}
	plan, err := restore.MakePlan(st, restore.Target{Kind: restore.Latest}, "")
	if err != nil || plan.Backup.ID != "B1" {
		t.Fatalf("MakePlan = %s, %v; want B1 (OFF ends on timeline 1 after it was left)", plan.Backup.ID, err)
	}
}

func TestMakePlanWithoutBackups(t *testing.T) {
	_, err := restore.MakePlan(inventory.State{}, restore.Target{Kind: restore.Latest}, "")
	if err == nil || !strings.Contains(err.Error(), "pgward backup") {
		t.Fatalf("MakePlan without backups = %v", err)
	}
	_, err = restore.MakePlan(inventory.State{Backups: []catalog.BackupInfo{backup("B", 1, "0/2000028", "0/9000100", 1)},
		WAL: []inventory.WALEnd{{Timeline: 1, End: lsn("0/3000000")}}}, restore.Target{Kind: restore.Latest}, "")
	if !errors.Is(err, restore.ErrOutsideWindow) {
		t.Fatalf("MakePlan when no backup's WAL is stored = %v, want ErrOutsideWindow", err)
	}
}

func TestParseTime(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	for in, want := range map[string]string{
		"2026-11-20T14:03:00+01:00":        "2026-11-20T13:03:00Z",
		"2026-11-20 14:03:00+01":           "2026-11-20T13:03:00Z",
		"2026-11-20 14:03:00.123456+01:00": "2026-11-20T13:03:00.123456Z",
		"2026-11-20 14:03:00":              "2026-11-20T13:03:00Z", // in Berlin
		"2026-11-20 14:03:00Z":             "2026-11-20T14:03:00Z",
		"2026-11-20 10:00":                 "2026-11-20T09:00:00Z", // no seconds, as a DBA says it
		"2026-11-20 10:00+01":              "2026-11-20T09:00:00Z",
		"2026-11-20T10:00":                 "2026-11-20T09:00:00Z",
		"2026-11-20T10:00Z":                "2026-11-20T10:00:00Z",
		" 2026-11-20 10:00:30 ":            "2026-11-20T09:00:30Z",
	} {
		got, err := restore.ParseTime(in, berlin)
		if err != nil || got.UTC().Format(time.RFC3339Nano) != want {
			t.Errorf("ParseTime(%q) = %s, %v; want %s", in, got.UTC().Format(time.RFC3339Nano), err, want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-13-01 00:00:00", "14:03", "2026-11-20 10", ""} {
		if _, err := restore.ParseTime(bad, time.UTC); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
			t.Errorf("ParseTime(%q) = %v, want an error with an example", bad, err)
		}
	}
}
