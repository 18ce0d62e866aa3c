package catalog_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/catalog"
)

func TestValidateClusterName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"main", true}, {"shared-01", true}, {"db_2.prod", true}, {"_x", true},
		{"", false}, {"-x", false}, {".x", false}, {"a/b", false}, {"..", false},
		{"a b", false}, {strings.Repeat("a", 63), true}, {strings.Repeat("a", 64), false},
	} {
		err := catalog.ValidateClusterName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateClusterName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestLayout(t *testing.T) {
	l := catalog.Layout{Cluster: "c1"}
	if got, want := l.WALKey("000000010000000000000001", ".zst.age"), "c1/wal/000000010000000000000001.zst.age"; got != want {
		t.Errorf("WALKey = %q, want %q", got, want)
	}
	if got, want := l.ClusterInfoKey(), "c1/cluster.json"; got != want {
		t.Errorf("ClusterInfoKey = %q, want %q", got, want)
	}
}

func TestClusterInfoJSON(t *testing.T) {
	in := catalog.ClusterInfo{Format: 1, SystemIdentifier: 18446744073709551615, PGVersion: 15,
		WALSegmentSize: 16 << 20, CreatedAt: time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	// A 64-bit identifier must survive tools that read numbers as doubles.
	if !strings.Contains(string(b), `"system_identifier":"18446744073709551615"`) {
		t.Fatalf("system_identifier not written as a string: %s", b)
	}
	var out catalog.ClusterInfo
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip = %+v, want %+v", out, in)
	}
	for _, bad := range []string{
		`{"format":2,"system_identifier":"1"}`,
		`{"format":1,"system_identifier":"x"}`,
		`{"format":1,"system_identifier":7}`,
	} {
		if err := json.Unmarshal([]byte(bad), &out); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want an error", bad)
		}
	}
}

func TestClusterInfoCheck(t *testing.T) {
	info := catalog.ClusterInfo{SystemIdentifier: 42, WALSegmentSize: 16 << 20}
	if err := info.Check("main", 42, 16<<20); err != nil {
		t.Errorf("Check(same system) = %v", err)
	}
	err := info.Check("main", 43, 16<<20)
	if !errors.Is(err, catalog.ErrOtherSystem) || !strings.Contains(err.Error(), "own --cluster") {
		t.Errorf("Check(other system) = %v, want ErrOtherSystem with advice", err)
	}
	if err := info.Check("main", 42, 64<<20); err == nil {
		t.Error("Check(other segment size) succeeded")
	}
}

func TestKeepBackups(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	b := func(id string, age time.Duration, pinned bool) catalog.BackupSummary {
		return catalog.BackupSummary{ID: id, StopTime: now.Add(-age), Pinned: pinned}
	}
	for _, tc := range []struct {
		name    string
		backups []catalog.BackupSummary
		want    []string
	}{
		{"none", nil, nil},
		{"all inside the window", []catalog.BackupSummary{b("a", day, false), b("b", 2*day, false)}, []string{"a", "b"}},
		{"the newest before the window is the base", []catalog.BackupSummary{b("old", 10*day, false), b("base", 8*day, false), b("in", 3*day, false)}, []string{"base", "in"}},
		{"pinned kept whatever its age", []catalog.BackupSummary{b("pin", 30*day, true), b("base", 8*day, false), b("old", 9*day, false)}, []string{"base", "pin"}},
		{"a pinned base needs no other", []catalog.BackupSummary{b("pin", 8*day, true), b("older", 9*day, false)}, []string{"pin"}},
		{"only old backups: the newest stays", []catalog.BackupSummary{b("x", 20*day, false), b("y", 15*day, false)}, []string{"y"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := catalog.KeepBackups(tc.backups, now, catalog.DefaultRetentionWindow)
			if len(got) != len(tc.want) {
				t.Fatalf("KeepBackups = %v, want %v", got, tc.want)
			}
			for _, id := range tc.want {
				if !got[id] {
					t.Errorf("KeepBackups = %v, want %s kept", got, id)
				}
			}
		})
	}
}

func TestPlanPrune(t *testing.T) {
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	b := func(id string, age time.Duration, start uint64, finished, pinned bool) catalog.PruneBackup {
		return catalog.PruneBackup{BackupSummary: catalog.BackupSummary{ID: id, StopTime: now.Add(-age), Pinned: pinned},
			StartLSN: start, Finished: finished, Newest: now.Add(-age)}
	}
	backups := []catalog.PruneBackup{
		b("d10", 10*day, 100, true, false),
		b("d9", 9*day, 200, true, false),
		b("d8", 8*day, 300, true, false), // the base of the window
		b("d3", 3*day, 800, true, false),
		b("failed-old", 9*day, 250, false, false),
		b("failed-new", 1*day, 900, false, false),
		b("pinned", 20*day, 50, true, true),
	}
	wal := []catalog.PruneWAL{{"w100", 100}, {"w299", 299}, {"w300", 300}, {"w301", 301}, {"w900", 900}}
	plan := catalog.PlanPrune(backups, wal, now, catalog.DefaultRetentionWindow)
	if got, want := fmt.Sprint(plan.Backups), "[d10 d9 failed-old]"; got != want {
		t.Errorf("backups deleted = %s, want %s", got, want)
	}
	// The pinned backup starts at 50: all WAL from there is kept.
	if len(plan.WAL) != 0 || plan.KeepFrom != 50 {
		t.Errorf("WAL deleted = %v from %d; the pinned backup needs everything from 50", plan.WAL, plan.KeepFrom)
	}
	backups[6].Pinned = false
	plan = catalog.PlanPrune(backups, wal, now, catalog.DefaultRetentionWindow)
	if got, want := fmt.Sprint(plan.WAL), "[w100 w299 w300]"; got != want || plan.KeepFrom != 300 {
		t.Errorf("WAL deleted = %s (keep from %d), want %s (keep from 300)", got, plan.KeepFrom, want)
	}
	for _, id := range plan.Backups {
		if plan.Reasons[id] == "" {
			t.Errorf("no reason for deleting %s", id)
		}
	}
	if plan := catalog.PlanPrune(nil, wal, now, catalog.DefaultRetentionWindow); len(plan.WAL) != 0 {
		t.Errorf("without any backup prune deleted WAL %v", plan.WAL)
	}
}

// An archive the server compressed says so; a compression this pgward
// does not know is refused rather than restored as something else.
func TestParseBackupInfoCompression(t *testing.T) {
	l := catalog.Layout{Cluster: "main"}
	sum := strings.Repeat("ab", 16)
	for compression, ok := range map[string]bool{"": true, "zstd": true, "lz4": false, "ZSTD": false, "zstd\n": false} {
		info := catalog.BackupInfo{Format: catalog.BackupFormat, ID: "B", Archives: []catalog.BackupArchive{{
			Name: "base.tar", Compression: compression,
			Parts: []catalog.BackupPart{{Key: l.BackupPartKey("B", "base.tar", 0, ".zst.age"), Bytes: 10, Checksum: sum}},
		}}, Manifest: catalog.BackupPart{Key: l.BackupManifestKey("B", ".zst.age"), Checksum: sum}}
		b, _ := json.Marshal(info)
		got, err := catalog.ParseBackupInfo(b, l, "B")
		if (err == nil) != ok {
			t.Errorf("compression %q: %v, want accepted %v", compression, err, ok)
			continue
		}
		if ok {
			want := "backup-part"
			if compression != "" {
				want = "backup-stream"
			}
			if e := got.Archives[0].Expect(got.Archives[0].Parts[0]); e.Kind != want || e.Size != 10 || e.Checksum != sum {
				t.Errorf("compression %q: reads as %+v, want kind %s", compression, e, want)
			}
		}
	}
}
