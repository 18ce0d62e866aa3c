package seal_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/pgward/pgward/seal"
)

func newSigningKey(t testing.TB) (*seal.SigningKey, seal.PublicKey) {
	t.Helper()
	file, pub, err := seal.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := seal.ParseSigningKey(file)
	if err != nil {
		t.Fatal(err)
	}
	p, err := seal.ParsePublicKey(pub)
	if err != nil || p != k.Public() {
		t.Fatalf("public key %q parses to %v (%v), want %v", pub, p, err, k.Public())
	}
	return k, p
}

// sealSigned seals data for key with a signing sealer, by the streaming
// writer or by SealBytes.
func sealSigned(t *testing.T, s *seal.Sealer, key string, data []byte, bytesPath bool) []byte {
	t.Helper()
	var out bytes.Buffer
	c := seal.Claims{Key: key, Kind: seal.KindWAL, Timeline: 1, Address: 0x3000000, SystemIdentifier: 42}
	if bytesPath {
		got, err := s.SealBytes(&out, data, c)
		if err != nil {
			t.Fatal(err)
		}
		if got.Size != int64(len(data)) || got.Checksum == "" {
			t.Fatalf("SealBytes claims %+v", got)
		}
		return out.Bytes()
	}
	w, err := s.NewWriter(&out, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// read opens object both ways (streaming and in memory) and returns the
// streaming result, failing when the two disagree.
func read(t *testing.T, o *seal.Opener, object []byte, want seal.Expect) ([]byte, error) {
	t.Helper()
	r, err := o.NewReader(bytes.NewReader(object), want)
	var got []byte
	if err == nil {
		got, err = io.ReadAll(r)
		r.Close()
	}
	mem, merr := o.OpenBytes(object, 1<<30, want)
	if (err == nil) != (merr == nil) {
		t.Fatalf("streaming read: %v; in memory: %v", err, merr)
	}
	if err == nil && !bytes.Equal(got, mem) {
		t.Fatal("streaming and in-memory reads differ")
	}
	var to bytes.Buffer
	n, _, terr := o.OpenBytesTo(&to, object, 1<<30, want)
	if (err == nil) != (terr == nil) {
		t.Fatalf("streaming read: %v; in memory into a writer: %v", err, terr)
	}
	if err == nil && (!bytes.Equal(got, to.Bytes()) || n != int64(len(got))) {
		t.Fatalf("streaming and in-memory-into-a-writer reads differ (%d bytes, %d reported)", to.Len(), n)
	}
	return got, err
}

func TestSignedObjects(t *testing.T) {
	key, pub := newSigningKey(t)
	other, otherPub := newSigningKey(t)
	id, _ := age.GenerateX25519Identity()
	data := make([]byte, 5<<20+123) // several frames
	rand.Read(data[:1<<20])
	const where = "main/wal/000000010000000000000003.zst.age"

	for _, encrypted := range []bool{true, false} {
		for _, bytesPath := range []bool{true, false} {
			var recipients []age.Recipient
			var ids []age.Identity
			if encrypted {
				recipients, ids = []age.Recipient{id.Recipient()}, []age.Identity{id}
			}
			s := seal.NewSealer(recipients, seal.LevelFastest, 2).SignWith(key)
			object := sealSigned(t, s, where, data, bytesPath)
			trusting := seal.NewOpener(ids).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}})

			got, err := read(t, trusting, object, seal.Expect{Key: where, Kind: seal.KindWAL, Size: int64(len(data))})
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("encrypted=%v bytes=%v: read back: %v", encrypted, bytesPath, err)
			}
			r, _ := trusting.NewReader(bytes.NewReader(object), seal.Expect{Key: where, Size: -1})
			io.Copy(io.Discard, r)
			if c, ok := r.Claims(); !ok || c.Timeline != 1 || c.Address != 0x3000000 || c.SystemIdentifier != 42 || c.Signer != pub {
				t.Fatalf("claims %+v, %v", c, ok)
			}

			cases := []struct {
				name   string
				opener *seal.Opener
				object []byte
				want   seal.Expect
				err    error
			}{
				{"moved to another key", trusting, object, seal.Expect{Key: "main/wal/000000010000000000000004.zst.age", Size: -1}, seal.ErrMisplaced},
				{"another kind", trusting, object, seal.Expect{Key: where, Kind: seal.KindBackupPart, Size: -1}, seal.ErrMisplaced},
				{"untrusted signer", seal.NewOpener(ids).SetTrust(seal.Trust{Signers: []seal.PublicKey{otherPub}}), object, seal.Expect{Key: where, Size: -1}, seal.ErrBadSignature},
				{"moved, no signer trusted", seal.NewOpener(ids), object, seal.Expect{Key: "main/wal/x.zst.age", Size: -1}, seal.ErrMisplaced},
				{"recorded size differs", trusting, object, seal.Expect{Key: where, Size: 1}, seal.ErrCorrupt},
			}
			for _, tc := range cases {
				if _, err := read(t, tc.opener, tc.object, tc.want); !errors.Is(err, tc.err) {
					t.Errorf("encrypted=%v bytes=%v %s: %v, want %v", encrypted, bytesPath, tc.name, err, tc.err)
				}
			}
		}
	}

	// A rotation: both keys trusted, objects of either read.
	both := seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub, otherPub}})
	for _, k := range []*seal.SigningKey{key, other} {
		object := sealSigned(t, seal.NewSealer(nil, seal.LevelFastest, 1).SignWith(k), where, []byte("x"), true)
		if _, err := read(t, both, object, seal.Expect{Key: where, Size: 1}); err != nil {
			t.Errorf("rotation: %v", err)
		}
	}
}

func TestUnsignedObjects(t *testing.T) {
	_, pub := newSigningKey(t)
	unsigned := sealSigned(t, seal.NewSealer(nil, seal.LevelFastest, 1), "k", []byte("old object"), true)
	strict := seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}})
	if _, err := read(t, strict, unsigned, seal.Expect{Key: "k", Size: -1}); !errors.Is(err, seal.ErrUnsigned) {
		t.Fatalf("unsigned object with a trusted signer: %v, want ErrUnsigned", err)
	}
	var warned []string
	lenient := seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}, AllowUnsigned: true,
		OnUnsigned: func(k string) { warned = append(warned, k) }})
	got, err := read(t, lenient, unsigned, seal.Expect{Key: "k", Size: -1})
	if err != nil || string(got) != "old object" || len(warned) != 3 { // once per read: streaming, in memory, in memory into a writer
		t.Fatalf("--allow-unsigned: %q, %v, warned %v", got, err, warned)
	}
}

// TestForgedObject is the attack signing exists for: whoever holds the
// recipient seals content of their own, with or without a signature of a
// key of their own, or splices the signature of a real object onto it.
func TestForgedObject(t *testing.T) {
	key, pub := newSigningKey(t)
	forger, _ := newSigningKey(t)
	id, _ := age.GenerateX25519Identity()
	rs, ids := []age.Recipient{id.Recipient()}, []age.Identity{id}
	const where = "main/basebackups/1/base.tar.0000.zst.age"
	real := sealSigned(t, seal.NewSealer(nil, seal.LevelFastest, 1).SignWith(key), where, []byte("real content"), true)
	opener := seal.NewOpener(ids).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}})

	forged := sealSigned(t, seal.NewSealer(rs, seal.LevelFastest, 1).SignWith(forger), where, []byte("evil content"), true)
	if _, err := read(t, opener, forged, seal.Expect{Key: where, Size: -1}); !errors.Is(err, seal.ErrBadSignature) {
		t.Errorf("signed by the forger's own key: %v, want ErrBadSignature", err)
	}
	// Splice: the forger's zstd frames, then the real object's signature frame.
	enc, _ := zstd.NewWriter(nil)
	evil := enc.EncodeAll([]byte("evil content"), nil)
	sig := real[bytes.LastIndex(real, []byte{0x5E, 0x2A, 0x4D, 0x18}):]
	var spliced bytes.Buffer
	aw, _ := age.Encrypt(&spliced, rs...)
	aw.Write(append(evil, sig...))
	aw.Close()
	if _, err := read(t, opener, spliced.Bytes(), seal.Expect{Key: where, Size: -1}); !errors.Is(err, seal.ErrBadSignature) {
		t.Errorf("spliced signature: %v, want ErrBadSignature", err)
	}
	// The plain zstd stream of a signed object is still a zstd stream any
	// decoder reads (the signature is a skippable frame).
	dec, _ := zstd.NewReader(nil)
	if got, err := dec.DecodeAll(real, nil); err != nil || string(got) != "real content" {
		t.Errorf("a plain decoder reads %q, %v", got, err)
	}
}

func TestSignedDocuments(t *testing.T) {
	key, pub := newSigningKey(t)
	doc := []byte(`{"format":1,"id":"x"}` + "\n")
	signed, err := key.SignDocument(doc, "main/basebackups/x/backup.json")
	if err != nil {
		t.Fatal(err)
	}
	trust := seal.Trust{Signers: []seal.PublicKey{pub}}
	got, err := trust.VerifyDocument(signed, "main/basebackups/x/backup.json")
	if err != nil || !bytes.Equal(got, doc) {
		t.Fatalf("VerifyDocument: %q, %v", got, err)
	}
	if _, err := trust.VerifyDocument(signed, "main/basebackups/y/backup.json"); !errors.Is(err, seal.ErrMisplaced) {
		t.Errorf("moved document: %v, want ErrMisplaced", err)
	}
	tampered := bytes.Replace(signed, []byte(`"x"`), []byte(`"z"`), 1)
	if _, err := trust.VerifyDocument(tampered, "main/basebackups/x/backup.json"); !errors.Is(err, seal.ErrBadSignature) {
		t.Errorf("tampered document: %v, want ErrBadSignature", err)
	}
	if _, err := trust.VerifyDocument(doc, "main/basebackups/x/backup.json"); !errors.Is(err, seal.ErrUnsigned) {
		t.Errorf("unsigned document: %v, want ErrUnsigned", err)
	}
	if _, err := key.SignDocument(doc, "bad\nkey"); err == nil {
		t.Error("a key with a newline was signed")
	}
}

func TestSigningKeyParsing(t *testing.T) {
	file, pub, _ := seal.GenerateSigningKey()
	for _, bad := range []string{"", "pgwsig1", "pgwsig1AAAA", "age1xyz", pub + "x", " " + pub + "\n"} {
		if _, err := seal.ParsePublicKey(bad); err == nil {
			t.Errorf("ParsePublicKey(%q) accepted", bad)
		}
	}
	if _, err := seal.ParseTrustedSigners(string(file)); err == nil || strings.Contains(err.Error(), "PGWARD-SIGNING-KEY-1") && len(err.Error()) > 200 {
		t.Errorf("a secret key as a trusted signer: %v", err)
	}
	keys, err := seal.ParseTrustedSigners(" " + pub + ", ," + pub)
	if err != nil || len(keys) != 2 {
		t.Errorf("ParseTrustedSigners: %v, %v", keys, err)
	}
	for _, bad := range []string{"", "# only a comment\n", string(file) + string(file), "PGWARD-SIGNING-KEY-1AAAA\n"} {
		if _, err := seal.ParseSigningKey([]byte(bad)); err == nil {
			t.Errorf("ParseSigningKey(%q) accepted", bad)
		}
	}
}

// FuzzVerifyRecord feeds arbitrary bytes as the end of a stream and as a
// signed document: nothing may panic, and nothing unsigned may pass a
// reader that trusts a signer.
func FuzzVerifyRecord(f *testing.F) {
	key, pub := newSigningKey(f)
	good := new(bytes.Buffer)
	seal.NewSealer(nil, seal.LevelFastest, 1).SignWith(key).SealBytes(good, []byte("seed"), seal.Claims{Key: "k", Kind: seal.KindWAL})
	f.Add(good.Bytes())
	doc, _ := key.SignDocument([]byte("{}\n"), "k")
	f.Add(doc)
	f.Add([]byte("PGWS"))
	trusting := seal.NewOpener(nil).SetTrust(seal.Trust{Signers: []seal.PublicKey{pub}})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := trusting.NewReader(bytes.NewReader(b), seal.Expect{Key: "k", Size: -1}); err == nil {
			got, err := io.ReadAll(r)
			r.Close()
			if err == nil && !bytes.Equal(b, good.Bytes()) && string(got) != "seed" {
				t.Fatalf("forged stream accepted: %q", got)
			}
		}
		trusting.OpenBytes(b, 1<<20, seal.Expect{Key: "k", Size: -1})
		trusting.Trust().VerifyDocument(b, "k")
	})
}
