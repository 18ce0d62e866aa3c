package archive_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/storage/storagetest"
)

// pgWAL lays out segments from..to in a pg_wal directory with their
// archive_status .ready files, as PostgreSQL leaves a backlog.
func pgWAL(t *testing.T, from, to uint64) (dir string, names []string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "pg_wal")
	if err := os.MkdirAll(filepath.Join(dir, "archive_status"), 0o700); err != nil {
		t.Fatal(err)
	}
	for n := from; n <= to; n++ {
		name := segName(n)
		writeFile(t, dir, name, segmentData(segSpec{segno: n, sysid: testSysID}))
		writeFile(t, filepath.Join(dir, "archive_status"), name+".ready", nil)
		names = append(names, name)
	}
	return dir, names
}

func TestPushAheadStoresTheBacklog(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	var puts atomic.Int64
	counting := &storagetest.Faulty{Backend: store, PutErr: func(string) error { puts.Add(1); return nil }}
	a := newArchive(counting, "main", k)
	dir, names := pgWAL(t, baseSeg, baseSeg+5)
	writeFile(t, filepath.Join(dir, "archive_status"), "junk.ready", nil)

	ahead := archive.ReadyAfter(filepath.Join(dir, names[0]), 3)
	if !slices.Equal(ahead, names[1:4]) {
		t.Fatalf("ReadyAfter = %q, want the next three of %q", ahead, names)
	}
	res, err := a.PushAhead(t.Context(), filepath.Join(dir, names[0]), ahead, 2, func(n string, err error) { t.Errorf("push ahead %s: %v", n, err) })
	if err != nil || res != archive.Stored {
		t.Fatalf("PushAhead = %v, %v", res, err)
	}
	for _, n := range names[:4] {
		assertWALObject(t, store, a, n)
	}
	// PostgreSQL's own calls for the pushed-ahead files find them stored
	// and store nothing; the next one is pushed as usual.
	before := puts.Load()
	for _, n := range names[1:4] {
		if got, err := a.Push(t.Context(), filepath.Join(dir, n)); err != nil || got != archive.AlreadyStored {
			t.Errorf("Push(%s) after pushing ahead = %v, %v; want AlreadyStored", n, got, err)
		}
	}
	if n := puts.Load() - before; n != 0 {
		t.Errorf("pushed-ahead files were stored again (%d writes)", n)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, ".pgward-pushed")); len(entries) != 0 {
		t.Errorf("marks left behind: %v", entries)
	}
	if got, err := a.Push(t.Context(), filepath.Join(dir, names[4])); err != nil || got != archive.Stored {
		t.Errorf("Push(%s) = %v, %v; want Stored", names[4], got, err)
	}
}

// A marked file whose stored copy has gone is stored again, not skipped.
func TestPushAheadMarkWithoutObject(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	dir, names := pgWAL(t, baseSeg, baseSeg+1)
	if _, err := a.PushAhead(t.Context(), filepath.Join(dir, names[0]), names[1:], 2, func(string, error) {}); err != nil {
		t.Fatal(err)
	}
	store.Delete(t.Context(), a.Layout.WALKey(names[1], seal.SuffixEncrypted))
	if got, err := a.Push(t.Context(), filepath.Join(dir, names[1])); err != nil || got != archive.Stored {
		t.Fatalf("Push of a marked file not stored = %v, %v; want Stored", got, err)
	}
	assertWALObject(t, store, a, names[1])
}

// A file that cannot be pushed ahead only warns; the one asked for is
// stored, and the failed one is pushed by its own call.
func TestPushAheadFailureOnlyWarns(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	dir, names := pgWAL(t, baseSeg, baseSeg+2)
	boom := errors.New("boom")
	failing := &storagetest.Faulty{Backend: store, PutErr: func(key string) error {
		if key == "main/wal/"+names[2]+seal.SuffixEncrypted {
			return boom
		}
		return nil
	}}
	a := newArchive(failing, "main", k)
	var warned []string
	res, err := a.PushAhead(t.Context(), filepath.Join(dir, names[0]), names[1:], 2, func(n string, err error) {
		if !errors.Is(err, boom) {
			t.Errorf("warned %s: %v", n, err)
		}
		warned = append(warned, n)
	})
	if err != nil || res != archive.Stored || !slices.Equal(warned, names[2:]) {
		t.Fatalf("PushAhead = %v, %v, warned %q", res, err, warned)
	}
	if _, err := os.Stat(filepath.Join(dir, ".pgward-pushed", names[2])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed push was marked as pushed")
	}
}

func assertWALObject(t *testing.T, store *memory.Backend, a *archive.Archive, name string) {
	t.Helper()
	dest := filepath.Join(t.TempDir(), name)
	if err := a.Fetch(t.Context(), name, dest); err != nil {
		t.Errorf("%s was not stored: %v", name, err)
	}
}
