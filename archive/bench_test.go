package archive_test

import (
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/fs"
)

// BenchmarkPushFile pushes a real segment (PGWARD_BENCH_SEGMENT, set by
// make bench) into a file repository, in process: the cost of one
// archive_command call without the process start.
func BenchmarkPushFile(b *testing.B) {
	seg, a, store := benchArchive(b)
	fi, _ := os.Stat(seg)
	b.SetBytes(fi.Size())
	key := a.Layout.WALKey(filepath.Base(seg), seal.SuffixEncrypted)
	for b.Loop() {
		if _, err := a.Push(b.Context(), seg); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		store.Delete(b.Context(), key)
		b.StartTimer()
	}
}

// BenchmarkFetchFile fetches a real segment from a file repository, in
// process: one restore_command call without the process start.
func BenchmarkFetchFile(b *testing.B) {
	seg, a, _ := benchArchive(b)
	if _, err := a.Push(b.Context(), seg); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(seg)
	b.SetBytes(fi.Size())
	dest := filepath.Join(b.TempDir(), "RECOVERYXLOG")
	for b.Loop() {
		if err := a.Fetch(b.Context(), filepath.Base(seg), dest); err != nil {
			b.Fatal(err)
		}
	}
}

// benchArchive returns the benchmark segment and an encrypting archive on
// a fresh file repository.
func benchArchive(b *testing.B) (string, *archive.Archive, *fs.Backend) {
	seg := os.Getenv("PGWARD_BENCH_SEGMENT")
	if seg == "" {
		b.Skip("PGWARD_BENCH_SEGMENT is not set (make bench sets it)")
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	store, err := fs.New(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return seg, &archive.Archive{Store: store, Layout: catalog.Layout{Cluster: "main"},
		Sealer: seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 0),
		Opener: seal.NewOpener([]age.Identity{id})}, store
}
