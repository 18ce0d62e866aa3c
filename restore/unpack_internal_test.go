package restore

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func tarOf(t *testing.T, entries ...tar.Header) *tar.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range entries {
		h := h
		body := []byte("x")
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	tw.Close()
	return tar.NewReader(&buf)
}

func TestExtractRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tar.Header
	}{
		{"dot-dot", []tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o600}}},
		{"dot-dot inside", []tar.Header{{Name: "base/../../evil", Typeflag: tar.TypeReg, Mode: 0o600}}},
		{"absolute", []tar.Header{{Name: "/tmp/evil", Typeflag: tar.TypeReg, Mode: 0o600}}},
		{"symlink out", []tar.Header{{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}},
		{"hard link", []tar.Header{{Name: "a", Typeflag: tar.TypeReg, Mode: 0o600}, {Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "pgdata")
			os.Mkdir(dest, 0o700)
			err := extract(tarOf(t, tc.entries...), dest)
			if !errors.Is(err, ErrUnsafeEntry) {
				t.Fatalf("extract = %v, want ErrUnsafeEntry", err)
			}
			if _, err := os.Stat(filepath.Join(parent, "evil")); !os.IsNotExist(err) {
				t.Fatalf("a file was written outside the target: %v", err)
			}
		})
	}
}

func TestExtractThroughAnExistingSymlinkIsRefused(t *testing.T) {
	parent := t.TempDir()
	dest := filepath.Join(parent, "pgdata")
	outside := filepath.Join(parent, "outside")
	os.Mkdir(dest, 0o700)
	os.Mkdir(outside, 0o700)
	os.Symlink(outside, filepath.Join(dest, "base")) // left over in a --force target
	err := extract(tarOf(t, tar.Header{Name: "base/file", Typeflag: tar.TypeReg, Mode: 0o600}), dest)
	if !errors.Is(err, ErrUnsafeEntry) {
		t.Fatalf("extract through a symlink = %v, want ErrUnsafeEntry", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("written through the symlink: %v", entries)
	}
}

func TestExtractWritesFilesPrivately(t *testing.T) {
	dest := t.TempDir()
	err := extract(tarOf(t, tar.Header{Name: "global/", Typeflag: tar.TypeDir, Mode: 0o755},
		tar.Header{Name: "global/pg_control", Typeflag: tar.TypeReg, Mode: 0o644}), dest)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dest, "global", "pg_control"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("pg_control mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	di, _ := os.Stat(filepath.Join(dest, "global"))
	if di.Mode().Perm() != 0o700 {
		t.Errorf("global mode = %v, want 0700", di.Mode().Perm())
	}
}

func TestPrepareRefusesNonEmpty(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15"), 0o600)
	if err := Prepare(dir, "B", false); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Fatalf("a non-empty directory without --force: %v", err)
	}
	// An earlier attempt's WAL must not survive into the new restore.
	os.MkdirAll(filepath.Join(dir, "pg_wal"), 0o700)
	os.WriteFile(filepath.Join(dir, "pg_wal", "00000002.history"), []byte("1\t0/3000000\tno reason\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "postmaster.pid"), []byte("123\n"), 0o600)
	if err := Prepare(dir, "B", true); err == nil || !strings.Contains(err.Error(), "postmaster.pid") {
		t.Fatalf("--force over a directory with postmaster.pid: %v", err)
	}
	os.Remove(filepath.Join(dir, "postmaster.pid"))
	if err := Prepare(dir, "B", true); err != nil {
		t.Fatalf("--force: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != IncompleteMarker {
		t.Fatalf("--force left %v in the directory", entries)
	}
	if err := Prepare("relative/dir", "B", false); err == nil {
		t.Fatal("a relative directory was accepted")
	}
}

func TestWriteTablespaceMap(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tablespace_map")
	os.WriteFile(p, []byte("16385 /srv/old/ts1\n16386 /srv/old/ts2\n"), 0o600)
	err := writeTablespaceMap(p, []Tablespace{{OID: "16385", Dir: "/srv/old/ts1"}, {OID: "16386", Dir: `/srv/new\ts2`, Mapped: true}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if want := "16385 /srv/old/ts1\n16386 /srv/new\\\\ts2\n"; string(got) != want {
		t.Errorf("tablespace_map = %q, want %q", got, want)
	}
	if e := parseTablespaceMap(got); len(e) != 2 || e[1] != (tablespaceMapEntry{"16386", `/srv/new\ts2`}) {
		t.Errorf("read back as %q", e)
	}
	// An entry without an archive would become a pg_tblspc link to
	// wherever it points.
	os.WriteFile(p, []byte("16385 /srv/old/ts1\n16390 /root/.ssh\n"), 0o600)
	err = writeTablespaceMap(p, []Tablespace{{OID: "16385", Dir: "/srv/ts1"}})
	if err == nil || !strings.Contains(err.Error(), "names tablespace 16390") {
		t.Errorf("a map entry without an archive: %v", err)
	}
	// No tablespaces and no map: nothing is written.
	q := filepath.Join(t.TempDir(), "tablespace_map")
	if err := writeTablespaceMap(q, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(q); !os.IsNotExist(err) {
		t.Errorf("a tablespace_map was created for a backup without tablespaces: %v", err)
	}
}
