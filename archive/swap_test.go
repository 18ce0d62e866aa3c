package archive_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/wal"
)

// swap exchanges two stored objects with their metadata, as `mv` does
// in a file repository (xattrs move with the file).
func swap(t *testing.T, store storage.Backend, a, b string) {
	t.Helper()
	da, ia := getObject(t, store, a)
	db, ib := getObject(t, store, b)
	if err := store.Put(t.Context(), a, bytes.NewReader(db), int64(len(db)), ib.Metadata); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(t.Context(), b, bytes.NewReader(da), int64(len(da)), ia.Metadata); err != nil {
		t.Fatal(err)
	}
}

func signingKey(t *testing.T) (*seal.SigningKey, seal.PublicKey) {
	t.Helper()
	file, _, err := seal.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.ParseSigningKey(file)
	if err != nil {
		t.Fatal(err)
	}
	return k, k.Public()
}

// TestFetchRefusesSwappedSegments: issue 11, case 1. Two genuine
// segments swapped with their metadata unseal cleanly and match their
// recorded checksums; fetch must still refuse each, signed or not, and
// serve nothing.
func TestFetchRefusesSwappedSegments(t *testing.T) {
	key, pub := signingKey(t)
	for _, signed := range []bool{false, true} {
		k := newKeys(t)
		store := memory.New()
		a := newArchive(store, "main", k)
		if signed {
			a.Sealer = seal.NewSealer(nil, seal.LevelFastest, 0).SignWith(key)
			a.Opener = seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}})
		} else {
			a.Sealer = seal.NewSealer(nil, seal.LevelFastest, 0)
			a.Opener = seal.NewOpener(nil)
		}
		pushSegments(t, a, baseSeg, baseSeg+1)
		one, two := segName(baseSeg), segName(baseSeg+1)
		swap(t, store, a.Layout.WALKey(one, seal.SuffixPlain), a.Layout.WALKey(two, seal.SuffixPlain))
		want := "does not match the content"
		if signed {
			want = "signed as main/wal/" + two
		}
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		err := a.Fetch(t.Context(), one, dest)
		if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, archive.ErrNotFound) {
			t.Errorf("signed=%v: fetch of a swapped segment: %v, want an error containing %q (not 'not found')", signed, err, want)
		}
		if _, serr := a.Verify(t.Context(), two, a.Layout.WALKey(two, seal.SuffixPlain)); serr == nil {
			t.Errorf("signed=%v: verify passed a swapped segment", signed)
		}
		if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("signed=%v: a refused segment was written to %s", signed, dest)
		}
	}
}

// TestFetchRefusesSegmentOfAnotherSystem: a segment copied in from
// another cluster's prefix carries the other system's identifier.
func TestFetchRefusesSegmentOfAnotherSystem(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	other := newArchive(store, "other", k)
	pushSegments(t, a, baseSeg, baseSeg)
	data := segmentData(segSpec{segno: baseSeg + 1, sysid: testSysID + 1})
	mustPush(t, other, writeFile(t, t.TempDir(), segName(baseSeg+1), data), archive.Stored)
	from := other.Layout.WALKey(segName(baseSeg+1), seal.SuffixEncrypted)
	obj, info := getObject(t, store, from)
	if err := store.Put(t.Context(), a.Layout.WALKey(segName(baseSeg+1), seal.SuffixEncrypted), bytes.NewReader(obj), int64(len(obj)), info.Metadata); err != nil {
		t.Fatal(err)
	}
	err := a.Fetch(t.Context(), segName(baseSeg+1), filepath.Join(t.TempDir(), "x"))
	if err == nil || !strings.Contains(err.Error(), "this cluster is system") {
		t.Fatalf("fetch of another system's segment: %v", err)
	}
}

// TestFetchChecksHistoryFiles: a stored history file that does not parse
// or does not belong to its timeline is refused on the way back too.
func TestFetchChecksHistoryFiles(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	put := func(name, content string) {
		var sealed bytes.Buffer
		key := a.Layout.WALKey(name, seal.SuffixEncrypted)
		if _, err := k.sealer.SealBytes(&sealed, []byte(content), seal.Claims{Key: key, Kind: seal.KindWAL}); err != nil {
			t.Fatal(err)
		}
		if err := store.Put(t.Context(), key, &sealed, int64(sealed.Len()), nil); err != nil {
			t.Fatal(err)
		}
	}
	put(wal.HistoryName(2), "junk\n")
	put(wal.HistoryName(3), "3\t0/3000000\tx\n")
	for _, name := range []string{wal.HistoryName(2), wal.HistoryName(3)} {
		if err := a.Fetch(t.Context(), name, filepath.Join(t.TempDir(), "h")); err == nil || !strings.Contains(err.Error(), "is not this file") {
			t.Errorf("fetch of a bad %s: %v", name, err)
		}
	}
}

// TestRotationSignsClusterInfoAnew: cluster.json is written once; after a
// writer's key rotates, readers that trust only the new key must still
// read it, so the first push with the new key signs it anew.
func TestRotationSignsClusterInfoAnew(t *testing.T) {
	oldKey, _ := signingKey(t)
	newKey, newPub := signingKey(t)
	store := memory.New()
	a := newArchive(store, "main", newKeys(t))
	a.Sealer = seal.NewSealer(nil, seal.LevelFastest, 0).SignWith(oldKey)
	pushSegments(t, a, baseSeg, baseSeg)
	a.Sealer = seal.NewSealer(nil, seal.LevelFastest, 0).SignWith(newKey)
	pushSegments(t, a, baseSeg+1, baseSeg+1)

	reader := newArchive(store, "main", newKeys(t))
	reader.Opener = seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{newPub}})
	if _, err := reader.ClusterInfo(t.Context()); err != nil {
		t.Fatalf("cluster.json with only the new key trusted: %v", err)
	}
	if err := reader.Fetch(t.Context(), segName(baseSeg+1), filepath.Join(t.TempDir(), "x")); err != nil {
		t.Errorf("fetch of the new key's segment: %v", err)
	}
	if err := reader.Fetch(t.Context(), segName(baseSeg), filepath.Join(t.TempDir(), "y")); err == nil || !strings.Contains(err.Error(), "not a --trusted-signer") {
		t.Errorf("fetch of the old key's segment with only the new key trusted: %v", err)
	}
}
