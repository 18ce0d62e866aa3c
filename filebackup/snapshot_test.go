package filebackup

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
)

// A walked tree, streamed into a sealed snapshot, reads back node for
// node; one moved under another set is refused.
func TestSnapshotRoundTrip(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	sealer := seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 0)
	opener := seal.NewOpener([]age.Identity{id})
	store := memory.New()
	root := t.TempDir()
	mkTree(t, root)

	h := SnapshotHeader{Set: "www", Domain: "shop", Time: time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC), Paths: []Name{Name(root)}}
	w, err := NewSnapshotWriter(t.Context(), store, sealer, h)
	if err != nil {
		t.Fatal(err)
	}
	var walked []Node
	if err := Walk(root, WalkOptions{}, func(_ string, n Node) error { walked = append(walked, n); return w.Add(n) }); err != nil {
		t.Fatal(err)
	}
	key, err := w.Close()
	if err != nil || key != "files/shop/snapshots/www/20261202T010000Z.json.zst.age" {
		t.Fatalf("Close = %q, %v", key, err)
	}
	var read []Node
	got, err := ReadSnapshot(t.Context(), store, opener, key, func(_ SnapshotHeader, n Node) error { read = append(read, n); return nil })
	if err != nil || got.Set != "www" || got.ID != "20261202T010000Z" {
		t.Fatalf("ReadSnapshot: %+v, %v", got, err)
	}
	if len(read) != len(walked) {
		t.Fatalf("read %d nodes, wrote %d", len(read), len(walked))
	}
	for i := range read {
		a, b := mustJSON(t, read[i]), mustJSON(t, walked[i])
		if !bytes.Equal(a, b) {
			t.Errorf("node %d: read %s\nwrote %s", i, a, b)
		}
	}
	keys, err := ListSnapshots(t.Context(), store, "shop", "www")
	if err != nil || len(keys) != 1 || keys[0] != key {
		t.Errorf("ListSnapshots = %v, %v", keys, err)
	}
	// The same bytes under another set's name: refused by its header.
	rc, info, _ := store.Get(t.Context(), key)
	var raw bytes.Buffer
	raw.ReadFrom(rc)
	rc.Close()
	moved := "files/shop/snapshots/etc/20261202T010000Z.json.zst.age"
	store.Put(t.Context(), moved, bytes.NewReader(raw.Bytes()), int64(raw.Len()), info.Metadata)
	if _, err := ReadSnapshot(t.Context(), store, opener, moved, func(SnapshotHeader, Node) error { return nil }); err == nil || !strings.Contains(err.Error(), "names another place") {
		t.Errorf("a moved snapshot: %v", err)
	}
	// Cut short: the seal's checks fail it.
	store.Put(t.Context(), key, bytes.NewReader(raw.Bytes()[:raw.Len()-40]), int64(raw.Len()-40), info.Metadata)
	if _, err := ReadSnapshot(t.Context(), store, opener, key, func(SnapshotHeader, Node) error { return nil }); err == nil {
		t.Error("a truncated snapshot was read")
	}
	if _, err := NewSnapshotWriter(t.Context(), store, sealer, SnapshotHeader{Set: "../x", Domain: "shop"}); err == nil {
		t.Error("a set that is a path was accepted")
	}
}
