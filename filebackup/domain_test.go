package filebackup

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// data is reproducible pseudo-random bytes: chunk boundaries need entropy.
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func split(t *testing.T, s Secret, b []byte) []string {
	t.Helper()
	sp, err := s.NewSplitter()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	var joined []byte
	err = sp.Split(bytes.NewReader(b), func(chunk []byte) error {
		ids = append(ids, s.ChunkID(chunk))
		joined = append(joined, chunk...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(joined, b) {
		t.Fatal("the chunks do not make up the input")
	}
	return ids
}

// Within a domain equal data has equal ids and an edit changes few
// chunks; across domains nothing compares.
func TestDomainsShareNothing(t *testing.T) {
	// Fixed secrets, so the boundaries are too and the test never flakes.
	a, b := Secret{1}, Secret{2}
	file := data(1, 24<<20)
	idsA := split(t, a, file)
	if again := split(t, a, file); strings.Join(again, ",") != strings.Join(idsA, ",") {
		t.Error("the same data split twice in one domain gave other chunks")
	}
	if len(idsA) < 8 {
		t.Errorf("24 MiB gave %d chunks; want about one per MiB", len(idsA))
	}
	// An edit in the middle: the chunks before and after are found again.
	edited := append(append(append([]byte{}, file[:12<<20]...), []byte("a change")...), file[12<<20:]...)
	seen := map[string]bool{}
	for _, id := range idsA {
		seen[id] = true
	}
	changed := 0
	for _, id := range split(t, a, edited) {
		if !seen[id] {
			changed++
		}
	}
	if changed > 2 {
		t.Errorf("an 8-byte insert changed %d chunks; want at most 2", changed)
	}
	// Another domain: no id in common, and other boundaries.
	idsB := split(t, b, file)
	for _, id := range idsB {
		if seen[id] {
			t.Fatal("two domains share a chunk id")
		}
	}
	if a.ChunkID([]byte("x")) == b.ChunkID([]byte("x")) {
		t.Error("equal plaintext has equal ids in two domains")
	}
	pa, _ := a.Polynomial()
	pb, _ := b.Polynomial()
	if pa == pb || !pa.Irreducible() || !pb.Irreducible() {
		t.Errorf("polynomials %v and %v: want two irreducible, distinct ones", pa, pb)
	}
	if pa2, _ := a.Polynomial(); pa2 != pa {
		t.Error("a domain's polynomial is not stable")
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.key")
	s, _ := NewSecret()
	if err := CreateSecretFile(path, s); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := LoadSecretFile(path)
	if err != nil || got != s {
		t.Fatalf("LoadSecretFile = %v, %v", got == s, err)
	}
	other, _ := NewSecret()
	if err := CreateSecretFile(path, other); err == nil || !strings.Contains(err.Error(), "never replaced") {
		t.Errorf("a second secret over the first: %v", err)
	}
	if got, _ := LoadSecretFile(path); got != s {
		t.Error("the secret was replaced")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	os.Chmod(path, 0o644)
	if _, err := LoadSecretFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a world-readable secret: %v", err)
	}
	for _, bad := range []string{"", "PGWARD-FILES-SECRET-1\n", "PGWARD-FILES-SECRET-1\nshort\n", "other\n" + strings.Repeat("A", 44)} {
		if _, err := ParseSecret([]byte(bad)); err == nil {
			t.Errorf("ParseSecret(%q) accepted it", bad)
		}
	}
	enc := string(s.Marshal())
	if _, err := ParseSecret([]byte(enc + "trailing\n")); err == nil {
		t.Error("a secret with trailing bytes was accepted")
	}
}
