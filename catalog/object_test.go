package catalog_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/storage/storagetest"
)

func TestObjectWriter(t *testing.T) {
	file, pub, _ := seal.GenerateSigningKey()
	key, _ := seal.ParseSigningKey(file)
	signer, _ := seal.ParsePublicKey(pub)
	sealer := seal.NewSealer(nil, seal.LevelFastest, 2).SignWith(key)
	opener := seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{signer}})
	data := bytes.Repeat([]byte("pgward object writer "), 300000) // several frames
	store := memory.New()

	w, err := catalog.NewObjectWriter(t.Context(), store.Create, "c/x.zst", sealer, seal.Claims{Kind: seal.KindDump}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := w.Claims()
	if c.Key != "c/x.zst" || c.Size != int64(len(data)) || c.Checksum == "" {
		t.Fatalf("claims %+v", c)
	}
	rc, info, err := store.Get(t.Context(), "c/x.zst")
	if err != nil || info.Size != w.StoredBytes() || info.Metadata["k"] != "v" {
		t.Fatalf("stored object: %+v, %v (writer counted %d bytes)", info, err, w.StoredBytes())
	}
	r, err := opener.NewReader(rc, seal.Expect{Key: "c/x.zst", Kind: seal.KindDump, Size: int64(len(data)), Checksum: c.Checksum})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) || !r.Signed() {
		t.Fatalf("read back: %d bytes, %v, signed %v", len(got), err, r.Signed())
	}

	// Created, never replaced.
	w, _ = catalog.NewObjectWriter(t.Context(), store.Create, "c/x.zst", sealer, seal.Claims{Kind: seal.KindDump}, nil)
	w.Write([]byte("other"))
	if err := w.Close(); !errors.Is(err, storage.ErrExist) {
		t.Errorf("second Create: %v, want ErrExist", err)
	}

	// Abort and a failing backend leave nothing.
	w, _ = catalog.NewObjectWriter(t.Context(), store.Create, "c/aborted", sealer, seal.Claims{Kind: seal.KindDump}, nil)
	w.Write(data)
	w.Abort(errors.New("pg_dump failed"))
	boom := errors.New("boom")
	faulty := &storagetest.Faulty{Backend: store, PutErr: func(string) error { return boom }}
	w, _ = catalog.NewObjectWriter(t.Context(), faulty.Create, "c/failed", sealer, seal.Claims{Kind: seal.KindDump}, nil)
	w.Write(data)
	if err := w.Close(); !errors.Is(err, boom) || !strings.Contains(err.Error(), "c/failed") {
		t.Errorf("failing backend: %v", err)
	}
	for _, k := range []string{"c/aborted", "c/failed"} {
		if _, err := store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("%s exists after a failed write: %v", k, err)
		}
	}

	// A key that cannot be signed is refused before anything is stored.
	if _, err := catalog.NewObjectWriter(t.Context(), store.Create, "c/bad\nkey", sealer, seal.Claims{}, nil); err == nil {
		t.Error("a key with a newline was accepted for signing")
	}
}
