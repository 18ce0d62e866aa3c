package filebackup

import (
	"bytes"
	"errors"
	"sort"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/memory"
)

// Chunks stored in a run come back through the run's index and packs,
// sealed to the domain's recipient; a second run of the same data stores
// nothing new.
func TestStoreRoundTrip(t *testing.T) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	sealer := seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 0)
	opener := seal.NewOpener([]age.Identity{id})
	store := memory.New()
	s := Secret{9}
	sp, _ := s.NewSplitter()
	file := data(10, 40<<20) // more than two packs
	st := &Store{Backend: store, Domain: "shop", Sealer: sealer, KeyID: s.KeyID()}
	var ids []string
	err = sp.Split(bytes.NewReader(file), func(c []byte) error {
		ids = append(ids, s.ChunkID(c))
		return st.Add(t.Context(), s.ChunkID(c), c)
	})
	if err != nil {
		t.Fatal(err)
	}
	key, err := st.Flush(t.Context())
	if err != nil || !strings.HasPrefix(key, "files/shop/index/") {
		t.Fatalf("Flush = %q, %v", key, err)
	}
	idx, err := ReadIndexes(t.Context(), store, opener, "shop", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(idx) != len(ids) {
		t.Fatalf("the index holds %d chunks, %d were stored", len(idx), len(ids))
	}
	// Read every pack back through its index entries, in offset order.
	byPack := map[string][]PackEntry{}
	for _, e := range idx {
		byPack[e.Pack] = append(byPack[e.Pack], PackEntry{ID: e.ID, Offset: e.Offset, Length: e.Length})
	}
	if len(byPack) < 3 {
		t.Errorf("%d packs for 40 MiB, want about 16 MiB each", len(byPack))
	}
	got := map[string][]byte{}
	for pack, entries := range byPack {
		sort.Slice(entries, func(i, j int) bool { return entries[i].Offset < entries[j].Offset })
		k := st.PackKey(pack)
		rc, _, err := store.Get(t.Context(), k)
		if err != nil {
			t.Fatal(err)
		}
		r, err := opener.NewReader(rc, seal.Expect{Key: k, Kind: KindPack, Size: -1})
		if err != nil {
			t.Fatal(err)
		}
		if err := ReadChunks(r, entries, s, nil, func(e PackEntry, d []byte) error { got[e.ID] = bytes.Clone(d); return nil }); err != nil {
			t.Fatal(err)
		}
		r.Close()
		rc.Close()
	}
	var back []byte
	for _, id := range ids {
		back = append(back, got[id]...)
	}
	if !bytes.Equal(back, file) {
		t.Error("the file does not come back from its chunks")
	}

	// The same data again, with what the domain holds: nothing new.
	before := countObjects(t, store)
	again := &Store{Backend: store, Domain: "shop", Sealer: sealer, Known: map[string]bool{}}
	for id := range idx {
		again.Known[id] = true
	}
	sp.Split(bytes.NewReader(file), func(c []byte) error { return again.Add(t.Context(), s.ChunkID(c), c) })
	if key, err := again.Flush(t.Context()); err != nil || key != "" || again.Written != 0 || countObjects(t, store) != before {
		t.Errorf("a second run of the same data: index %q, %v, %d bytes written", key, err, again.Written)
	}

	// Another identity reads nothing.
	other, _ := age.GenerateX25519Identity()
	if _, err := ReadIndexes(t.Context(), store, seal.NewOpener([]age.Identity{other}), "shop", ""); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("another customer's identity: %v", err)
	}
	if _, err := ReadIndexes(t.Context(), store, opener, "../shop", ""); err == nil {
		t.Error("a domain that is a path was accepted")
	}
}

func countObjects(t *testing.T, b storage.Backend) int {
	n := 0
	b.List(t.Context(), "", func(storage.ObjectInfo) error { n++; return nil })
	return n
}

// An index entry that names no valid place is refused, even sealed.
func TestReadIndexesRefusesBadEntries(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	sealer := seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 0)
	opener := seal.NewOpener([]age.Identity{id})
	for _, line := range []string{
		`{"id":"` + strings.Repeat("a", 64) + `","pack":"../../etc","offset":0,"length":1}`,
		`{"id":"xyz","pack":"` + strings.Repeat("b", 32) + `","offset":0,"length":1}`,
		`{"id":"` + strings.Repeat("a", 64) + `","pack":"` + strings.Repeat("b", 32) + `","offset":-1,"length":1}`,
		`not json`,
	} {
		store := memory.New()
		key := Prefix("shop") + "index/k/" + strings.Repeat("c", 32) + sealer.Suffix()
		w, err := catalog.NewObjectWriter(t.Context(), store.Create, key, sealer, seal.Claims{Kind: KindIndex}, nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(line + "\n"))
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadIndexes(t.Context(), store, opener, "shop", ""); err == nil {
			t.Errorf("index line %s was accepted", line)
		}
	}
}
