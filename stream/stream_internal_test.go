package stream

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/wal"
)

const seg = 16 << 20

func newTestStreamer(t *testing.T, repoSegs []string, spoolSegs []string, server uint32, hist []wal.HistoryEntry) *Streamer {
	t.Helper()
	store := memory.New()
	a := &archive.Archive{Store: store, Layout: catalog.Layout{Cluster: "main"}, Sealer: seal.NewSealer(nil, seal.LevelFastest, 1)}
	for _, name := range repoSegs {
		if err := store.Put(t.Context(), a.Layout.WALKey(name, seal.SuffixPlain), strings.NewReader("x"), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	spool := t.TempDir()
	for _, name := range append(spoolSegs, "000000010000000000000009.partial", "00000002.history") {
		os.WriteFile(filepath.Join(spool, name), []byte("x"), 0o600)
	}
	cfg, _ := pgconn.ParseConfig("host=/nonexistent")
	s, err := New(Config{Conn: cfg, Archive: a, SpoolDir: spool})
	if err != nil {
		t.Fatal(err)
	}
	s.segSize.Store(seg)
	s.server, s.serverHist = server, hist
	return s
}

func lsn(t *testing.T, v string) wal.LSN {
	t.Helper()
	l, err := wal.ParseLSN(v)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Segments waiting in the spool are streamed past, but only what the
// repository holds counts as stored: the slot must keep the rest.
func TestStartPointCountsOnlyTheRepositoryAsStored(t *testing.T) {
	s := newTestStreamer(t,
		[]string{"000000010000000000000001", "000000010000000000000002", "000000010000000000000003", "000000010000000000000003.partial"},
		[]string{"000000010000000000000004", "000000010000000000000005"}, 1, nil)
	tli, start, err := s.startPoint(t.Context(), slotState{exists: true, restart: lsn(t, "0/2000000"), timeline: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tli != 1 || start != lsn(t, "0/6000000") {
		t.Errorf("start = %d %s, want streaming to resume after the spooled segment 5 (1 0/6000000)", tli, start)
	}
	if got := wal.LSN(s.stored.Load()); got != lsn(t, "0/4000000") {
		t.Errorf("stored = %s, want the repository's end 0/4000000, not the spool's", got)
	}
	if _, err := os.Stat(filepath.Join(s.cfg.SpoolDir, "000000010000000000000009.partial")); !os.IsNotExist(err) {
		t.Errorf("the interrupted session's partial was left in the spool: %v", err)
	}

	// Storing segment 5 before 4 must not move the position past the gap.
	if s.advanceStored(1, lsn(t, "0/5000000"), lsn(t, "0/6000000")) {
		t.Error("segment 5 advanced the stored position while 4 is missing")
	}
	if !s.advanceStored(1, lsn(t, "0/4000000"), lsn(t, "0/5000000")) || !s.advanceStored(1, lsn(t, "0/5000000"), lsn(t, "0/6000000")) {
		t.Error("segments 4 then 5 did not advance the stored position")
	}
	if got := wal.LSN(s.stored.Load()); got != lsn(t, "0/6000000") {
		t.Errorf("stored = %s, want 0/6000000", got)
	}
}

// WAL stored on an old timeline past the point where the server's
// history left it is not on the path: it does not count, and the old
// timeline's later pieces cannot advance the position.
func TestStoredFollowsTheServersTimelineHistory(t *testing.T) {
	hist := []wal.HistoryEntry{{Parent: 1, SwitchPoint: lsn(t, "0/70000A0")}}
	s := newTestStreamer(t, []string{"000000010000000000000007", "000000010000000000000008"}, nil, 2, hist)
	tli, start, err := s.startPoint(t.Context(), slotState{exists: true, restart: lsn(t, "0/7100000"), timeline: 2})
	if err != nil {
		t.Fatal(err)
	}
	if tli != 2 || start != lsn(t, "0/7000000") {
		t.Errorf("start = %d %s, want timeline 2 from the switch segment 0/7000000", tli, start)
	}
	if got := wal.LSN(s.stored.Load()); got > lsn(t, "0/70000A0") {
		t.Errorf("stored = %s, beyond the switch point 0/70000A0", got)
	}
	if s.advanceStored(1, lsn(t, "0/7000000"), lsn(t, "0/8000000")) {
		t.Error("a timeline 1 segment past the switch point advanced the stored position")
	}
	if !s.advanceStored(2, lsn(t, "0/7000000"), lsn(t, "0/8000000")) {
		t.Error("timeline 2's switch segment did not advance the stored position")
	}
}

// On the very first start nothing before the slot's position is ours: the
// stored chain begins where streaming does, so the first segment stored
// advances it.
func TestFirstStartStoresFromTheSlot(t *testing.T) {
	s := newTestStreamer(t, nil, nil, 1, nil)
	tli, start, err := s.startPoint(t.Context(), slotState{exists: true, restart: lsn(t, "0/3000028"), timeline: 1})
	if err != nil {
		t.Fatal(err)
	}
	if tli != 1 || start != lsn(t, "0/3000000") {
		t.Fatalf("start = %d %s, want 1 0/3000000", tli, start)
	}
	if !s.advanceStored(1, lsn(t, "0/3000000"), lsn(t, "0/4000000")) {
		t.Fatal("the first segment streamed did not advance the stored position")
	}
}

// After a restart with an empty repository (it was unreachable), the
// spooled segments count once stored, from the oldest.
func TestSpoolOnlyStoresFromItsOldestSegment(t *testing.T) {
	s := newTestStreamer(t, nil, []string{"000000010000000000000005", "000000010000000000000006"}, 1, nil)
	if _, start, err := s.startPoint(t.Context(), slotState{exists: true, restart: lsn(t, "0/5000000"), timeline: 1}); err != nil || start != lsn(t, "0/7000000") {
		t.Fatalf("start = %s, %v; want 0/7000000", start, err)
	}
	if got := wal.LSN(s.stored.Load()); got != lsn(t, "0/5000000") {
		t.Fatalf("stored = %s, want 0/5000000: the spool is not stored yet", got)
	}
	if !s.advanceStored(1, lsn(t, "0/5000000"), lsn(t, "0/6000000")) {
		t.Fatal("storing the oldest spooled segment did not advance the stored position")
	}
}
