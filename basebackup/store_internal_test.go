package basebackup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/klauspost/compress/zstd"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/memory"
)

// The sink cuts archives into parts and records every part, whatever
// the order in which uploads finish and however the lists grow.
func TestStoreSinkParts(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	store := memory.New()
	layout := catalog.Layout{Cluster: "c"}
	s := &storeSink{ctx: t.Context(), store: store, layout: layout, id: "B1", partSize: 1000,
		sealer: seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 1)}
	base := bytes.Repeat([]byte("base-data-"), 730) // 7300 bytes: 8 parts
	tbs := bytes.Repeat([]byte("tablespace"), 150)  // 1500 bytes: 2 parts
	manifest := []byte(`{"PostgreSQL-Backup-Manifest-Version": 1}`)
	steps := []func() error{
		func() error { return s.Begin(0, 1, []Tablespace{{Size: 9000}}) },
		func() error { return s.Archive("base.tar", "") },
		func() error { return s.Write(base[:2500]) },
		func() error { return s.Write(base[2500:]) },
		func() error { return s.Archive("16385.tar", "/srv/tbs") },
		func() error { return s.Write(tbs) },
		func() error { return s.Manifest() },
		func() error { return s.Write(manifest) },
		s.finish,
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if len(s.archives) != 2 || len(s.archives[0].Parts) != 8 || len(s.archives[1].Parts) != 2 {
		t.Fatalf("archives = %+v, want base.tar in 8 parts and 16385.tar in 2", s.archives)
	}
	opener := seal.NewOpener([]age.Identity{id})
	read := func(p catalog.BackupPart) []byte {
		t.Helper()
		if p.Key == "" || p.Checksum == "" || p.StoredBytes == 0 {
			t.Fatalf("part recorded without key, checksum or size: %+v", p)
		}
		rc, _, err := store.Get(context.Background(), p.Key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		r, err := opener.NewReader(rc, catalog.BackupArchive{}.Expect(p))
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != p.Bytes {
			t.Fatalf("%s holds %d bytes, backup.json says %d", p.Key, len(b), p.Bytes)
		}
		return b
	}
	for i, want := range [][]byte{base, tbs} {
		var got []byte
		for _, p := range s.archives[i].Parts {
			got = append(got, read(p)...)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("archive %s: parts concatenated differ from what was sent", s.archives[i].Name)
		}
	}
	if got := read(*s.manifest); !bytes.Equal(got, manifest) {
		t.Errorf("manifest = %q", got)
	}
	if s.dataBytes != int64(len(base)+len(tbs)) {
		t.Errorf("data bytes = %d, want %d (the manifest is not data)", s.dataBytes, len(base)+len(tbs))
	}
	// storedBytes is every object stored, the manifest included: what
	// backup.json's stored_bytes reports.
	var stored int64
	store.List(context.Background(), "", func(o storage.ObjectInfo) error {
		stored += o.Size
		return nil
	})
	if s.storedBytes != stored {
		t.Errorf("stored bytes = %d, the repository holds %d", s.storedBytes, stored)
	}
}

func TestArchiveNamesThatCouldEscape(t *testing.T) {
	for name, ok := range map[string]bool{"base.tar": true, "16385.tar": true, "../x.tar": false, "a/b.tar": false, ".tar": false, "base.tgz": false} {
		if validArchiveName(name) != ok {
			t.Errorf("validArchiveName(%q) = %v, want %v", name, !ok, ok)
		}
	}
}

// A server-compressed archive comes as <name>.zst and is stored whole
// (one zstd frame cannot be cut), as a backup stream; the data size is
// what the server last reported reading.
func TestStoreSinkCompressedArchive(t *testing.T) {
	id, _ := age.GenerateX25519Identity()
	store := memory.New()
	s := &storeSink{ctx: t.Context(), store: store, layout: catalog.Layout{Cluster: "c"}, id: "B1", partSize: 1 << 20, compressed: true,
		sealer: seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 1)}
	// Random data, so the stream itself is over the part size: cut, it
	// would be several parts.
	plain := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(plain)
	enc, _ := zstd.NewWriter(nil)
	stream := enc.EncodeAll(plain, nil)
	if len(stream) <= int(s.partSize) {
		t.Fatalf("the stream is %d bytes, not over the %d part size", len(stream), s.partSize)
	}
	if err := s.Archive("base.tar", ""); err == nil {
		t.Fatal("an uncompressed archive was accepted where a compressed one was asked for")
	}
	steps := []func() error{
		func() error { return s.Archive("base.tar.zst", "") },
		func() error { return s.Write(stream[:100]) },
		func() error { return s.Write(stream[100:]) },
		func() error { s.Progress(int64(len(plain))); return nil },
		func() error { return s.Manifest() },
		func() error { return s.Write([]byte(`{}`)) },
		s.finish,
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	a := s.archives[len(s.archives)-1]
	if a.Name != "base.tar" || a.Compression != catalog.CompressionZstd || len(a.Parts) != 1 || a.Parts[0].Bytes != int64(len(stream)) {
		t.Fatalf("archive = %+v, want base.tar, zstd, one part of %d bytes", a, len(stream))
	}
	if s.dataBytes != int64(len(plain)) {
		t.Errorf("data bytes = %d, want %d", s.dataBytes, len(plain))
	}
	rc, _, err := store.Get(t.Context(), a.Parts[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, err := seal.NewOpener([]age.Identity{id}).NewReader(rc, a.Expect(a.Parts[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read back %d bytes, %v; want the %d bytes compressed", len(got), err, len(plain))
	}
}

func TestOptionsSQL(t *testing.T) {
	for _, c := range []struct {
		opts Options
		want []string
		not  []string
	}{
		{Options{Label: "it's"}, []string{"LABEL 'it''s'", "MANIFEST_CHECKSUMS 'CRC32C'", "CHECKPOINT 'spread'"}, []string{"COMPRESSION"}},
		{Options{ServerCompress: true}, []string{"COMPRESSION 'zstd'", "COMPRESSION_DETAIL 'level=1'"}, []string{"workers"}},
		{Options{ServerCompress: true, CompressWorkers: 3, Fast: true}, []string{"COMPRESSION_DETAIL 'level=1,workers=3'", "CHECKPOINT 'fast'"}, nil},
	} {
		sql := c.opts.sql()
		for _, w := range c.want {
			if !strings.Contains(sql, w) {
				t.Errorf("%+v: %s lacks %s", c.opts, sql, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(sql, n) {
				t.Errorf("%+v: %s has %s", c.opts, sql, n)
			}
		}
	}
}

func TestCannotCompress(t *testing.T) {
	for err, want := range map[error]bool{
		&pgconn.PgError{Code: "42601", Message: "invalid compression specification: this build does not support compression with ZSTD"}: true,
		&pgconn.PgError{Code: "22023", Message: "could not set compression worker count to 2: Unsupported parameter"}:                   true,
		&pgconn.PgError{Code: "55000", Message: "recovery is in progress"}:                                                              false,
		io.ErrUnexpectedEOF: false,
	} {
		if got := cannotCompress(fmt.Errorf("BASE_BACKUP: %w", err)); got != want {
			t.Errorf("cannotCompress(%v) = %v, want %v", err, got, want)
		}
	}
}
