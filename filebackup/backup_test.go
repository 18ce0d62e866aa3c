package filebackup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
)

type customer struct {
	recipient string
	opener    *seal.Opener
}

func newCustomer(t *testing.T) customer {
	t.Helper()
	key, rcpt, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := seal.ParseIdentities(bytes.NewReader(key))
	if err != nil {
		t.Fatal(err)
	}
	return customer{recipient: rcpt, opener: seal.NewOpener(ids)}
}

// treeSums maps each entry below root to what a user compares: type,
// mode, content hash or link target.
func treeSums(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(rel, ".pgward-restore") {
			t.Errorf("staging left behind: %s", rel)
		}
		fi, _ := os.Lstat(p)
		v := fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			sum := sha256.Sum256(b)
			v += " " + string(sum[:8]) + " " + fi.ModTime().UTC().Format(time.RFC3339Nano)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[rel] = v
		return nil
	})
	return out
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	src := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // ~4.6 MiB
	for rel, data := range map[string][]byte{
		"www/index.html": []byte("<h1>hi</h1>"), "www/big.bin": big, "www/empty": nil,
		"home/alice/notes\nwith newline": []byte("alice's"), "home/bob/bad\xffname": []byte("bob's"),
		"home/alice/same.txt": []byte("equal in two customers"), "home/bob/same.txt": []byte("equal in two customers"),
	} {
		p := filepath.Join(src, rel)
		os.MkdirAll(filepath.Dir(p), 0o750)
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("index.html", filepath.Join(src, "www/link"))
	os.Link(filepath.Join(src, "www/big.bin"), filepath.Join(src, "www/big-hardlink"))
	sparse, _ := os.Create(filepath.Join(src, "www/sparse"))
	sparse.WriteAt([]byte("end"), 64<<20)
	sparse.Close()

	operator, alice := newCustomer(t), newCustomer(t)
	store := memory.New()
	opts := BackupOptions{
		Backend: store, Set: "web", Host: "web1", Paths: []string{src}, StateDir: t.TempDir(),
		Routes: []Route{{Prefix: "", Recipients: []string{operator.recipient}},
			{Prefix: filepath.Join(src, "home/alice"), Recipients: []string{alice.recipient}},
			{Prefix: filepath.Join(src, "home/bob"), Recipients: []string{operator.recipient}}}, // same keys as the rest: one domain
		Now: func() time.Time { return time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC) },
	}
	res, err := Backup(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusOK || len(res.Snapshots) != 2 {
		t.Fatalf("first backup: %+v", res)
	}
	if res.BytesRead < int64(len(big)) || res.BytesRead > int64(len(big))+1<<20 {
		t.Errorf("first backup read %d bytes; the tree holds about %d (the sparse file's hole is not read)", res.BytesRead, len(big))
	}

	// The operator restores all but alice's part; alice only hers.
	dst := filepath.Join(t.TempDir(), "restore here")
	rr, err := Restore(t.Context(), RestoreOptions{Backend: store, Opener: operator.opener, Set: "web", Target: dst})
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Unreadable) != 1 {
		t.Errorf("operator restore: unreadable domains %v, want alice's one", rr.Unreadable)
	}
	want := treeSums(t, src)
	got := treeSums(t, filepath.Join(dst, strings.TrimPrefix(src, "/")))
	for rel, v := range want {
		inAlice := rel == "home/alice" || strings.HasPrefix(rel, "home/alice/")
		if inAlice && rel != "home/alice" {
			if _, ok := got[rel]; ok {
				t.Errorf("operator restored alice's %q", rel)
			}
			continue
		}
		if rel == "home/alice" {
			continue
		}
		if got[rel] != v {
			t.Errorf("%q: restored %q, want %q", rel, got[rel], v)
		}
	}
	dstA := t.TempDir()
	if _, err := Restore(t.Context(), RestoreOptions{Backend: store, Opener: alice.opener, Set: "web", Target: dstA}); err != nil {
		t.Fatal(err)
	}
	gotA := treeSums(t, filepath.Join(dstA, strings.TrimPrefix(src, "/")))
	if gotA["home/alice/same.txt"] != want["home/alice/same.txt"] || gotA["home/alice/notes\nwith newline"] != want["home/alice/notes\nwith newline"] {
		t.Errorf("alice's restore: %v", gotA)
	}
	if _, ok := gotA["www/index.html"]; ok {
		t.Error("alice restored the operator's files")
	}

	// A second run reads nothing unchanged and stores nothing new.
	opts.Now = func() time.Time { return time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC) }
	res2, err := Backup(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res2.BytesRead != 0 || res2.BytesNew != 0 {
		t.Errorf("second backup read %d and stored %d bytes of an unchanged tree", res2.BytesRead, res2.BytesNew)
	}

	// Non-empty target refused.
	if _, err := Restore(t.Context(), RestoreOptions{Backend: store, Opener: operator.opener, Set: "web", Target: dst}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("restore into a non-empty target: %v", err)
	}
	// Nobody else reads any of it.
	stranger := newCustomer(t)
	if _, err := Restore(t.Context(), RestoreOptions{Backend: store, Opener: stranger.opener, Set: "web", Target: t.TempDir()}); !errors.Is(err, seal.ErrWrongIdentity) {
		t.Errorf("a stranger's restore: %v, want ErrWrongIdentity", err)
	}
}

func TestCommandItems(t *testing.T) {
	op := newCustomer(t)
	store := memory.New()
	res, err := Backup(t.Context(), BackupOptions{
		Backend: store, Set: "defs", Host: "h", StateDir: t.TempDir(),
		Routes:   []Route{{Recipients: []string{op.recipient}}},
		Commands: []Command{{Name: "kv", Command: "printf 'key=value\\n'"}, {Name: "broken", Command: "echo partial; exit 3"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != StatusFailed || len(res.FailedItems) != 1 || res.FailedItems[0] != "broken" {
		t.Fatalf("result %+v: want failed, naming broken", res)
	}
	dst := t.TempDir()
	if _, err := Restore(t.Context(), RestoreOptions{Backend: store, Opener: op.opener, Set: "defs", Target: dst}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "@command/kv")); err != nil || string(b) != "key=value\n" {
		t.Errorf("kv item: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "@command/broken")); err == nil {
		t.Error("a failed command's output was stored")
	}
}

// A key object copied under another key id, or another domain, is refused.
func TestDomainKeysRefuseMovedObjects(t *testing.T) {
	op := newCustomer(t)
	store := memory.New()
	res, err := Backup(t.Context(), BackupOptions{Backend: store, Set: "etc", Host: "h", StateDir: t.TempDir(),
		Routes: []Route{{Recipients: []string{op.recipient}}}, Commands: []Command{{Name: "x", Command: "echo x"}}})
	if err != nil {
		t.Fatal(err)
	}
	domain := res.Domains[0]
	keys, err := LoadDomainKeys(t.Context(), store, op.opener, domain)
	if err != nil || len(keys) != 1 {
		t.Fatalf("LoadDomainKeys = %v, %v", keys, err)
	}
	var src string
	for id := range keys {
		src = KeyKey(domain, id, seal.SuffixEncrypted)
	}
	rc, _, err := store.Get(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := seal.ReadAll(rc, 1<<20)
	rc.Close()
	for _, moved := range []string{KeyKey(domain, "0000000000000000", seal.SuffixEncrypted), KeyKey("other-domain", "x", seal.SuffixEncrypted)} {
		s2 := memory.New()
		if err := s2.Put(t.Context(), moved, bytes.NewReader(body), int64(len(body)), nil); err != nil {
			t.Fatal(err)
		}
		d, _, _ := strings.Cut(strings.TrimPrefix(moved, "files/"), "/")
		if _, err := LoadDomainKeys(t.Context(), s2, op.opener, d); err == nil {
			t.Errorf("a key object moved to %s was accepted", moved)
		}
	}
}
