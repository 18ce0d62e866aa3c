package inventory

import (
	"testing"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/wal"
)

func TestWindowsAndNewest(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	st := State{
		Backups: []catalog.BackupInfo{
			{ID: "b1", StopLSN: "0/3000100", StopTimeline: 1, StopTime: t0.Add(time.Hour)},
			{ID: "b0", StopLSN: "0/2000100", StopTimeline: 1, StopTime: t0},
			{ID: "b2", StopLSN: "0/9000100", StopTimeline: 2, StopTime: t0.Add(5 * time.Hour)}, // beyond timeline 2's WAL
			{ID: "b3", StopLSN: "0/5000100", StopTimeline: 3, StopTime: t0.Add(6 * time.Hour)}, // a timeline without WAL
		},
		WAL: []WALEnd{
			{Timeline: 2, End: 0x8000000, Stored: t0.Add(4 * time.Hour)},
			{Timeline: 1, End: 0x6000000, Stored: t0.Add(3 * time.Hour)},
		},
	}
	if n := st.Newest(); n.Timeline != 2 || n.End != 0x8000000 {
		t.Errorf("Newest() = %+v, want timeline 2", n)
	}
	w := Windows(st)
	if len(w) != 2 {
		t.Fatalf("Windows() = %+v, want one per timeline with WAL", w)
	}
	if w[0].Timeline != 1 || !w[0].From.Equal(t0) || w[0].FromLSN != wal.LSN(0x2000100) || !w[0].To.Equal(t0.Add(3*time.Hour)) || !w[0].HasBaseBackup {
		t.Errorf("timeline 1: %+v, want from the oldest backup b0 to the newest WAL", w[0])
	}
	if w[1].Timeline != 2 || w[1].HasBaseBackup || !w[1].From.IsZero() || w[1].ToLSNText != "0/8000000" {
		t.Errorf("timeline 2: %+v, want no base backup (b2 stops past the stored WAL)", w[1])
	}
	if (State{}).Newest() != (WALEnd{}) {
		t.Error("an empty state has a newest WAL")
	}
}
