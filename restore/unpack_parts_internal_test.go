package restore

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
)

// storedBackup writes a tar of files into parts of partSize and returns
// the backup.json that lists them.
func storedBackup(t *testing.T, store *memory.Backend, files map[string]string, partSize int) catalog.BackupInfo {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	sealer := seal.NewSealer(nil, seal.LevelFastest, 1)
	a := catalog.BackupArchive{Name: "base.tar"}
	data := buf.Bytes()
	for i := 0; len(data) > 0; i++ {
		n := min(partSize, len(data))
		var sealed bytes.Buffer
		key := fmt.Sprintf("c/basebackups/B/base.tar.%04d.zst", i)
		claims, err := sealer.SealBytes(&sealed, data[:n], seal.Claims{Key: key, Kind: seal.KindBackupPart})
		if err != nil {
			t.Fatal(err)
		}
		store.Put(t.Context(), key, bytes.NewReader(sealed.Bytes()), int64(sealed.Len()), nil)
		a.Parts = append(a.Parts, catalog.BackupPart{Key: key, Bytes: int64(n), Checksum: claims.Checksum})
		data = data[n:]
	}
	return catalog.BackupInfo{ID: "B", Archives: []catalog.BackupArchive{a}}
}

func TestUnpackParts(t *testing.T) {
	files := map[string]string{"PG_VERSION": "15\n", "base/1/1259": strings.Repeat("relation", 5000), "global/pg_control": strings.Repeat("c", 8192)}
	for _, jobs := range []int{1, 3} {
		t.Run(fmt.Sprintf("jobs %d", jobs), func(t *testing.T) {
			store := memory.New()
			b := storedBackup(t, store, files, 7000)
			if len(b.Archives[0].Parts) < 4 {
				t.Fatalf("only %d parts", len(b.Archives[0].Parts))
			}
			dir := filepath.Join(t.TempDir(), "pgdata")
			if err := Prepare(dir, b.ID, false); err != nil {
				t.Fatal(err)
			}
			if err := Unpack(t.Context(), store, seal.NewOpener(nil), b, dir, UnpackOptions{Jobs: jobs}); err != nil {
				t.Fatal(err)
			}
			for name, want := range files {
				got, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil || string(got) != want {
					t.Errorf("%s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
				}
			}
			if _, err := os.Stat(filepath.Join(dir, ".pgward-parts")); !os.IsNotExist(err) {
				t.Errorf("downloaded parts were left behind: %v", err)
			}
		})
	}
}

// A missing part fails the restore without hanging, whatever the jobs,
// and leaves the incomplete marker.
func TestUnpackMissingPart(t *testing.T) {
	for _, jobs := range []int{1, 4} {
		store := memory.New()
		b := storedBackup(t, store, map[string]string{"a": strings.Repeat("x", 30000)}, 5000)
		store.Delete(t.Context(), b.Archives[0].Parts[2].Key)
		dir := filepath.Join(t.TempDir(), "pgdata")
		Prepare(dir, b.ID, false)
		if err := Unpack(t.Context(), store, seal.NewOpener(nil), b, dir, UnpackOptions{Jobs: jobs}); err == nil {
			t.Fatalf("jobs %d: a restore with a missing part succeeded", jobs)
		}
		if _, err := os.Stat(filepath.Join(dir, IncompleteMarker)); err != nil {
			t.Errorf("jobs %d: the incomplete marker is gone after a failed restore: %v", jobs, err)
		}
	}
}

// A part whose content differs from the checksum backup.json records
// fails the restore, even at the right size.
func TestUnpackChecksPartChecksums(t *testing.T) {
	store := memory.New()
	b := storedBackup(t, store, map[string]string{"a": strings.Repeat("x", 3000)}, 1<<20)
	b.Archives[0].Parts[0].Checksum = "00000000000000000000000000000000"
	dir := filepath.Join(t.TempDir(), "pgdata")
	Prepare(dir, b.ID, false)
	if err := Unpack(t.Context(), store, seal.NewOpener(nil), b, dir, UnpackOptions{Jobs: 1}); !errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("Unpack of a part with another checksum = %v, want ErrCorrupt", err)
	}
}

// A tablespace's recorded location may be a live tablespace on this
// host: --force never empties it.
func TestUnpackNeverForcesTablespaceLocation(t *testing.T) {
	store := memory.New()
	ts := storedBackup(t, store, map[string]string{"PG_15_202209061/1/1": "rel"}, 1<<20).Archives[0]
	for i, p := range ts.Parts { // out of the way of base.tar's parts
		rc, _, _ := store.Get(t.Context(), p.Key)
		ts.Parts[i].Key = strings.Replace(p.Key, "base.tar", "16385.tar", 1)
		store.Put(t.Context(), ts.Parts[i].Key, rc, -1, nil)
	}
	b := storedBackup(t, store, map[string]string{"PG_VERSION": "15\n"}, 1<<20)
	live := t.TempDir()
	os.WriteFile(filepath.Join(live, "live-data"), []byte("production"), 0o600)
	ts.Name, ts.Tablespace = "16385.tar", live
	b.Archives = append(b.Archives, ts)
	dir := filepath.Join(t.TempDir(), "pgdata")
	Prepare(dir, b.ID, true)
	err := Unpack(t.Context(), store, seal.NewOpener(nil), b, dir, UnpackOptions{Force: true, Jobs: 1})
	if err == nil || !strings.Contains(err.Error(), "--tablespace-map 16385=DIR") {
		t.Fatalf("Unpack with --force over a non-empty tablespace location = %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(live, "live-data")); string(got) != "production" {
		t.Fatal("the live tablespace was touched")
	}
}
