package seal_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/pgward/pgward/seal"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/v1")

// walLike returns data that compresses like WAL: runs of zeros and repeated
// records with some noise.
func walLike(n int) []byte {
	b := make([]byte, n)
	rec := make([]byte, 256)
	_, _ = rand.Read(rec)
	for i := 0; i+512 <= n; i += 1024 {
		copy(b[i:], rec)
		b[i+7] ^= byte(i >> 10)
	}
	return b
}

func newKey(t testing.TB) (*age.X25519Identity, []age.Recipient) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id, []age.Recipient{id.Recipient()}
}

func sealBytes(t testing.TB, s *seal.Sealer, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := s.NewWriter(&buf, seal.Claims{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func openBytes(o *seal.Opener, sealed []byte) ([]byte, error) {
	r, err := o.NewReader(bytes.NewReader(sealed), seal.Expect{Size: -1})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var out bytes.Buffer
	_, err = io.Copy(&out, r)
	return out.Bytes(), err
}

func TestRoundTrip(t *testing.T) {
	id, rcpt := newKey(t)
	for _, tc := range []struct {
		name      string
		recipient []age.Recipient
		prefix    []byte
	}{
		{"encrypted", rcpt, []byte("age-encryption.org/v1\n")},
		{"plain", nil, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, size := range []int{0, 1, 16 << 20} {
				data := walLike(size)
				s := seal.NewSealer(tc.recipient, seal.LevelFastest, 0)
				sealed := sealBytes(t, s, data)
				if !bytes.HasPrefix(sealed, tc.prefix) {
					t.Fatalf("sealed object starts %q, want %q", sealed[:min(len(sealed), 22)], tc.prefix)
				}
				if size == 16<<20 && len(sealed) > size/4 {
					t.Errorf("16 MiB of WAL-like data sealed to %d bytes; compression is not working", len(sealed))
				}
				got, err := openBytes(seal.NewOpener([]age.Identity{id}), sealed)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("round trip of %d bytes returned %d different bytes", size, len(got))
				}
			}
		})
	}
}

func TestSuffix(t *testing.T) {
	_, rcpt := newKey(t)
	if got := seal.NewSealer(rcpt, seal.LevelFastest, 0).Suffix(); got != ".zst.age" {
		t.Errorf("encrypted suffix = %q", got)
	}
	if got := seal.NewSealer(nil, seal.LevelFastest, 0).Suffix(); got != ".zst" {
		t.Errorf("plain suffix = %q", got)
	}
}

func TestOpenErrors(t *testing.T) {
	id, rcpt := newKey(t)
	other, _ := newKey(t)
	data := walLike(1 << 20)
	sealed := sealBytes(t, seal.NewSealer(rcpt, seal.LevelFastest, 0), data)
	plain := sealBytes(t, seal.NewSealer(nil, seal.LevelFastest, 0), data)

	tampered := bytes.Clone(sealed)
	tampered[len(tampered)/2] ^= 0x01
	plainTampered := bytes.Clone(plain)
	plainTampered[len(plainTampered)-6] ^= 0x55 // inside the last block / checksum

	for _, tc := range []struct {
		name    string
		ids     []age.Identity
		object  []byte
		wantErr error
	}{
		{"no identity", nil, sealed, seal.ErrNoIdentity},
		{"wrong identity", []age.Identity{other}, sealed, seal.ErrWrongIdentity},
		{"truncated", []age.Identity{id}, sealed[:len(sealed)-100], seal.ErrCorrupt},
		{"truncated at a chunk boundary", []age.Identity{id}, sealed[:len(sealed)/2], seal.ErrCorrupt},
		{"tampered", []age.Identity{id}, tampered, seal.ErrCorrupt},
		{"truncated header", []age.Identity{id}, sealed[:30], seal.ErrCorrupt},
		{"plain truncated", nil, plain[:len(plain)-10], seal.ErrCorrupt},
		{"plain tampered", nil, plainTampered, seal.ErrCorrupt},
		{"not sealed", nil, []byte("hello, world"), seal.ErrCorrupt},
		{"empty", nil, nil, seal.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := openBytes(seal.NewOpener(tc.ids), tc.object)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("open error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestNoIdentityMessageNamesTheFlag(t *testing.T) {
	msg := seal.ErrNoIdentity.Error()
	for _, want := range []string{"--identity-file", "PGWARD_IDENTITY_FILE"} {
		if !strings.Contains(msg, want) {
			t.Errorf("ErrNoIdentity %q does not mention %s", msg, want)
		}
	}
}

func TestDestinationErrorIsNotCorruption(t *testing.T) {
	sealed := sealBytes(t, seal.NewSealer(nil, seal.LevelFastest, 0), walLike(1<<20))
	r, err := seal.NewOpener(nil).NewReader(bytes.NewReader(sealed), seal.Expect{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	full := errors.New("no space left on device")
	_, err = io.Copy(failingWriter{full}, r)
	if !errors.Is(err, full) || errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("copy error = %v, want the destination's error and not ErrCorrupt", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// The golden vectors pin the sealed format: objects written by an earlier
// pgward must open forever. Regenerate only with a format version bump.
func TestGoldenVectors(t *testing.T) {
	ids, err := seal.LoadIdentities("testdata/v1/key.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte(strings.Repeat("pgward golden vector\n", 1000))
	if *update {
		rcpt, _ := age.ParseX25519Recipient(ids[0].(*age.X25519Identity).Recipient().String())
		for name, s := range map[string]*seal.Sealer{
			"object.zst.age": seal.NewSealer([]age.Recipient{rcpt}, seal.LevelFastest, 0),
			"object.zst":     seal.NewSealer(nil, seal.LevelFastest, 0),
		} {
			if err := os.WriteFile(filepath.Join("testdata/v1", name), sealBytes(t, s, want), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, name := range []string{"object.zst.age", "object.zst"} {
		sealed, err := os.ReadFile(filepath.Join("testdata/v1", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := openBytes(seal.NewOpener(ids), sealed)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: plaintext differs from the golden content", name)
		}
	}
}

func TestParseRecipients(t *testing.T) {
	_, rcpt := newKey(t)
	r := rcpt[0].(*age.X25519Recipient).String()
	got, err := seal.ParseRecipients(" " + r + ", ," + r)
	if err != nil || len(got) != 2 {
		t.Fatalf("ParseRecipients = %d, %v; want 2 recipients", len(got), err)
	}
	if _, err := seal.ParseRecipients("age1notakey"); err == nil || !strings.Contains(err.Error(), "invalid recipient") {
		t.Errorf("bad recipient error = %v", err)
	}
	secret := "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	_, err = seal.ParseRecipients(secret)
	if err == nil || strings.Contains(err.Error(), "QQQQ") || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("secret key as recipient: error = %v; want a message that does not echo the key", err)
	}
}

func TestLoadIdentitiesErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := seal.LoadIdentities(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file error = %v", err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1SECRETSECRET\n"), 0o600)
	_, err := seal.LoadIdentities(bad)
	if err == nil || strings.Contains(err.Error(), "SECRETSECRET") {
		t.Errorf("bad identity error = %v; want an error without the file's contents", err)
	}
}

func TestGenerateIdentity(t *testing.T) {
	keyFile, recipient, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(recipient, "age1") {
		t.Fatalf("recipient %q does not start with age1", recipient)
	}
	ids, err := seal.ParseIdentities(bytes.NewReader(keyFile))
	if err != nil || len(ids) != 1 {
		t.Fatalf("generated key file does not parse: %v", err)
	}
	if got := ids[0].(*age.X25519Identity).Recipient().String(); got != recipient {
		t.Fatalf("key file recipient %s != printed %s", got, recipient)
	}
}

func FuzzOpen(f *testing.F) {
	id, rcpt := newKey(f)
	f.Add(sealBytes(f, seal.NewSealer(rcpt, seal.LevelFastest, 0), []byte("hello")))
	f.Add(sealBytes(f, seal.NewSealer(nil, seal.LevelFastest, 0), []byte("hello")))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n"))
	f.Fuzz(func(t *testing.T, object []byte) {
		// Must not panic or hang; any damage must surface as an error.
		_, _ = openBytes(seal.NewOpener([]age.Identity{id}), object)
	})
}

// A source that fails mid-object (a dropped connection) is reported as
// itself, not as corruption, so nobody deletes a good object.
func TestSourceErrorIsNotCorruption(t *testing.T) {
	id, rcpt := newKey(t)
	sealed := sealBytes(t, seal.NewSealer(rcpt, seal.LevelFastest, 0), walLike(4<<20))
	reset := errors.New("connection reset by peer")
	for _, cut := range []int{10, len(sealed) / 2} {
		src := io.MultiReader(bytes.NewReader(sealed[:cut]), iotest.ErrReader(reset))
		r, err := seal.NewOpener([]age.Identity{id}).NewReader(src, seal.Expect{Size: -1})
		if err == nil {
			_, err = io.Copy(io.Discard, r)
			r.Close()
		}
		if !errors.Is(err, reset) || errors.Is(err, seal.ErrCorrupt) {
			t.Errorf("source failing after %d bytes: %v, want the source's error and not ErrCorrupt", cut, err)
		}
	}
}

func TestOpenBytes(t *testing.T) {
	id, rcpt := newKey(t)
	other, _ := newKey(t)
	opener := seal.NewOpener([]age.Identity{id})
	for _, tc := range []struct {
		name string
		rcpt []age.Recipient
		size int
	}{
		{"encrypted empty", rcpt, 0},
		{"encrypted one frame", rcpt, 1000},
		{"encrypted many frames", rcpt, 16<<20 + 5},
		{"plain many frames", nil, 5 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := walLike(tc.size)
			sealed := sealBytes(t, seal.NewSealer(tc.rcpt, seal.LevelFastest, 0), data)
			got, err := opener.OpenBytes(sealed, 1<<30, seal.Expect{Size: -1})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("OpenBytes returned %d bytes that differ from the %d sealed", len(got), len(data))
			}
			var to bytes.Buffer
			if n, _, err := opener.OpenBytesTo(&to, sealed, 1<<30, seal.Expect{Size: -1}); err != nil || n != int64(len(data)) || !bytes.Equal(to.Bytes(), data) {
				t.Fatalf("OpenBytesTo: %d bytes (%d written), %v; want the %d sealed", n, to.Len(), err, len(data))
			}
			if tc.size > 0 {
				if _, err := opener.OpenBytes(sealed, int64(tc.size-1), seal.Expect{Size: -1}); !errors.Is(err, seal.ErrTooLarge) {
					t.Errorf("OpenBytes with a smaller limit: %v, want ErrTooLarge", err)
				}
				to.Reset()
				if _, _, err := opener.OpenBytesTo(&to, sealed, int64(tc.size-1), seal.Expect{Size: -1}); !errors.Is(err, seal.ErrTooLarge) || to.Len() > tc.size {
					t.Errorf("OpenBytesTo with a smaller limit: %v after %d bytes, want ErrTooLarge", err, to.Len())
				}
			}
		})
	}

	// A zstd stream from another producer (no content sizes) is decoded
	// as a stream.
	var foreign bytes.Buffer
	enc, _ := zstd.NewWriter(&foreign)
	data := walLike(3 << 20)
	enc.Write(data)
	enc.Close()
	got, err := seal.NewOpener(nil).OpenBytes(foreign.Bytes(), 1<<30, seal.Expect{Size: -1})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("foreign zstd stream: %d bytes, %v", len(got), err)
	}
	var to bytes.Buffer
	if _, _, err := seal.NewOpener(nil).OpenBytesTo(&to, foreign.Bytes(), 1<<30, seal.Expect{Size: -1}); err != nil || !bytes.Equal(to.Bytes(), data) {
		t.Fatalf("foreign zstd stream into a writer: %d bytes, %v", to.Len(), err)
	}
	to.Reset()
	if _, _, err := seal.NewOpener(nil).OpenBytesTo(&to, foreign.Bytes(), 1<<20, seal.Expect{Size: -1}); !errors.Is(err, seal.ErrTooLarge) || to.Len() > 1<<20+1 {
		t.Fatalf("foreign zstd stream over the limit: %v after %d bytes, want ErrTooLarge", err, to.Len())
	}

	sealed := sealBytes(t, seal.NewSealer(rcpt, seal.LevelFastest, 0), walLike(8<<20))
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)/2] ^= 1
	plain := sealBytes(t, seal.NewSealer(nil, seal.LevelFastest, 0), walLike(8<<20))
	plainTampered := bytes.Clone(plain)
	plainTampered[len(plainTampered)/2] ^= 0x40
	for _, tc := range []struct {
		name   string
		opener *seal.Opener
		object []byte
		want   error
	}{
		{"no identity", seal.NewOpener(nil), sealed, seal.ErrNoIdentity},
		{"wrong identity", seal.NewOpener([]age.Identity{other}), sealed, seal.ErrWrongIdentity},
		{"truncated", opener, sealed[:len(sealed)-1000], seal.ErrCorrupt},
		{"tampered", opener, tampered, seal.ErrCorrupt},
		{"plain truncated", opener, plain[:len(plain)-10], seal.ErrCorrupt},
		{"plain tampered", opener, plainTampered, seal.ErrCorrupt},
		{"garbage", opener, []byte("garbage"), seal.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.opener.OpenBytes(tc.object, 1<<30, seal.Expect{Size: -1}); !errors.Is(err, tc.want) {
				t.Fatalf("OpenBytes = %v, want %v", err, tc.want)
			}
			if _, _, err := tc.opener.OpenBytesTo(io.Discard, tc.object, 1<<30, seal.Expect{Size: -1}); !errors.Is(err, tc.want) {
				t.Fatalf("OpenBytesTo = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzOpenBytes(f *testing.F) {
	f.Add(sealBytes(f, seal.NewSealer(nil, seal.LevelFastest, 0), []byte("hello")))
	f.Add(sealBytes(f, seal.NewSealer(nil, seal.LevelFastest, 0), walLike(3<<20))[:200])
	f.Fuzz(func(t *testing.T, object []byte) {
		_, _ = seal.NewOpener(nil).OpenBytes(object, 64<<20, seal.Expect{Size: -1})
	})
}
