package basebackup

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage/memory"
)

// ListAll names every backup with its status: finished, refused, running
// (the lock names it and its holder is alive) and failed (parts without
// backup.json, nothing taking it).
func TestListAllStatuses(t *testing.T) {
	store := memory.New()
	layout := catalog.Layout{Cluster: "main"}
	ctx := t.Context()
	put := func(key string, data []byte) {
		t.Helper()
		if err := store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
	}
	sum := strings.Repeat("0123456789abcdef", 2)
	finished := func(id string, stop time.Time) []byte {
		b, _ := json.Marshal(catalog.BackupInfo{Format: catalog.BackupFormat, ID: id, StartTime: stop.Add(-time.Minute), StopTime: stop,
			StartLSN: "0/3000028", StopLSN: "0/3000100", StartTimeline: 1, StopTimeline: 1,
			Archives: []catalog.BackupArchive{{Name: "base.tar", Parts: []catalog.BackupPart{{Key: layout.BackupPartKey(id, "base.tar", 0, ".zst"), Bytes: 1, StoredBytes: 1, Checksum: sum}}}},
			Manifest: catalog.BackupPart{Key: layout.BackupManifestKey(id, ".zst"), Bytes: 1, StoredBytes: 1, Checksum: sum}})
		return b
	}
	t0 := time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC)
	put(layout.BackupInfoKey("20261201T010000Z"), finished("20261201T010000Z", t0))
	put(layout.BackupInfoKey("20261130T010000Z"), []byte("{not json"))
	put(layout.BackupPartKey("20261129T010000Z", "base.tar", 0, ".zst"), make([]byte, 100)) // failed
	put(layout.BackupPartKey("20261202T010000Z", "base.tar", 0, ".zst"), make([]byte, 50))  // running

	now := func() time.Time { return t0.Add(24 * time.Hour) }
	l, err := acquireLock(ctx, store, layout.BackupLockKey(), time.Hour, now, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.setBackup("20261202T010000Z"); err != nil {
		t.Fatal(err)
	}
	entries, err := ListAll(ctx, store, layout, nil, now())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.ID+" "+e.Status)
	}
	want := "20261129T010000Z failed,20261130T010000Z refused,20261201T010000Z finished,20261202T010000Z running"
	if strings.Join(got, ",") != want {
		t.Errorf("ListAll = %v, want %s", got, want)
	}
	if e := entries[0]; e.PartsBytes != 100 {
		t.Errorf("failed backup: parts %d bytes, want 100", e.PartsBytes)
	}
	if e := entries[3]; e.Holder == "" || e.Since.IsZero() || e.PartsBytes != 50 {
		t.Errorf("running backup: %+v", e)
	}
	if e := entries[1]; e.Error == "" {
		t.Error("refused backup: no reason")
	}
	// Once the lease is over and nobody renews it, a running backup has failed.
	entries, _ = ListAll(ctx, store, layout, nil, now().Add(2*time.Hour))
	if entries[3].Status != StatusFailed {
		t.Errorf("after the lease: %s, want failed", entries[3].Status)
	}
	l.release(ctx)
}
