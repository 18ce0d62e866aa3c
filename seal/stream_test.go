package seal_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"

	"github.com/pgward/pgward/seal"
)

// sealStream seals stream, already compressed, as a backup stream, in
// pieces as a backup receives it.
func sealStream(t *testing.T, s *seal.Sealer, key string, stream []byte) ([]byte, seal.Claims) {
	t.Helper()
	var out bytes.Buffer
	w, err := s.NewWriter(&out, seal.Claims{Key: key, Kind: seal.KindBackupStream})
	if err != nil {
		t.Fatal(err)
	}
	for p := stream; len(p) > 0; {
		n := min(len(p), 7777)
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), w.Claims()
}

// A backup stream is sealed as it came, described by its own size and
// checksum, and reads back as the plaintext it compresses.
func TestBackupStream(t *testing.T) {
	plain := walLike(3 << 20)
	enc, _ := zstd.NewWriter(nil)
	stream := enc.EncodeAll(plain, nil)
	id, recipients := newKey(t)
	signer, pub := newSigningKey(t)
	sealer := seal.NewSealer(recipients, seal.LevelFastest, 2).SignWith(signer)
	const key = "main/basebackups/B/base.tar.0000.zst.age"
	object, claims := sealStream(t, sealer, key, stream)
	sum := xxh3.Hash128(stream).Bytes()
	if claims.Size != int64(len(stream)) || claims.Checksum != hex.EncodeToString(sum[:]) {
		t.Fatalf("claims size %d checksum %s, want the stream's %d %x", claims.Size, claims.Checksum, len(stream), sum)
	}
	opener := seal.NewOpener([]age.Identity{id}).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}})
	want := seal.Expect{Key: key, Kind: seal.KindBackupStream, Size: claims.Size, Checksum: claims.Checksum}
	got, err := read(t, opener, object, want)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("read: %d bytes, %v; want the %d plaintext bytes", len(got), err, len(plain))
	}

	// Read as an ordinary part, its claims do not fit: refused.
	if _, err := read(t, opener, object, seal.Expect{Key: key, Kind: seal.KindBackupPart, Size: int64(len(plain)), Checksum: claims.Checksum}); !errors.Is(err, seal.ErrMisplaced) {
		t.Errorf("read as a backup part: %v, want ErrMisplaced", err)
	}
	// An unsigned stream with another recorded checksum is corrupt.
	unsigned, _ := sealStream(t, seal.NewSealer(recipients, seal.LevelFastest, 2), key, stream)
	anyone := seal.NewOpener([]age.Identity{id})
	bad := want
	bad.Checksum = strings.Repeat("0", 32)
	if _, err := read(t, anyone, unsigned, bad); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("read with another checksum: %v, want ErrCorrupt", err)
	}
	bad = want
	bad.Size++
	if _, err := read(t, anyone, unsigned, bad); !errors.Is(err, seal.ErrCorrupt) {
		t.Errorf("read with another size: %v, want ErrCorrupt", err)
	}
	if got, err := read(t, anyone, unsigned, want); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("unsigned read: %d bytes, %v", len(got), err)
	}
}

// What is not a zstd stream is refused before it is stored.
func TestBackupStreamMustBeZstd(t *testing.T) {
	_, recipients := newKey(t)
	for name, input := range map[string][]byte{"tar": make([]byte, 1024), "empty": nil, "short": {0x28, 0xb5}} {
		var out bytes.Buffer
		w, err := seal.NewSealer(recipients, seal.LevelFastest, 1).NewWriter(&out, seal.Claims{Key: "k", Kind: seal.KindBackupStream})
		if err != nil {
			t.Fatal(err)
		}
		_, werr := io.Copy(w, bytes.NewReader(input))
		cerr := w.Close()
		if werr == nil && cerr == nil {
			t.Errorf("%s: sealed as a zstd stream", name)
		}
	}
}
