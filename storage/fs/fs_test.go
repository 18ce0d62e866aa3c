package fs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/storage/fs"
	"github.com/pgward/pgward/storage/storagetest"
)

func TestConformance(t *testing.T) {
	b, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, b)
}

func TestNewRejectsRelativePath(t *testing.T) {
	_, err := fs.New("relative/repo")
	if err == nil || !strings.Contains(err.Error(), "must be absolute") {
		t.Fatalf("New(relative) error = %v, want 'must be absolute'", err)
	}
}

func TestNewRefusesMissingDirectory(t *testing.T) {
	_, err := fs.New(filepath.Join(t.TempDir(), "not-mounted"))
	if err == nil || !strings.Contains(err.Error(), "does not exist: create it") {
		t.Fatalf("New(missing) error = %v, want 'does not exist: create it'", err)
	}
}

func TestPutLeavesNoTempFiles(t *testing.T) {
	dir := t.TempDir()
	b, err := fs.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(t.Context(), "c/wal/x", strings.NewReader("data"), 4, map[string]string{"sha256": "00"}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "c", "wal"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "x" {
		t.Fatalf("directory holds %v, want only x", entries)
	}
	fi, _ := entries[0].Info()
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("object mode = %v, want 0600", fi.Mode().Perm())
	}
}

func TestDeleteRemovesEmptyDirectories(t *testing.T) {
	root := t.TempDir()
	b, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, k := range []string{"c/dumps/db/1/a", "c/dumps/db/1/b", "c/dumps/db/2/a"} {
		if err := b.Put(ctx, k, strings.NewReader("x"), 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"c/dumps/db/1/a", "c/dumps/db/1/b"} {
		if err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "c/dumps/db/1")); !os.IsNotExist(err) {
		t.Errorf("empty directory left: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "c/dumps/db/2/a")); err != nil {
		t.Errorf("a sibling went too: %v", err)
	}
	if err := b.Delete(ctx, "c/dumps/db/2/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("the root went: %v", err)
	}
	// Writing into a directory a Delete removed makes it again.
	if err := b.Create(ctx, "c/dumps/db/1/a", strings.NewReader("y"), 1, nil); err != nil {
		t.Fatal(err)
	}
}

func TestFailedWriteLeavesNoDirectory(t *testing.T) {
	root := t.TempDir()
	b, err := fs.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Create(t.Context(), "c/dumps/db/1/a", iotest.ErrReader(os.ErrClosed), -1, nil); err == nil {
		t.Fatal("a failing reader stored an object")
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("left behind: %v", entries)
	}
}
