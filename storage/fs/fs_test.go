package fs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
