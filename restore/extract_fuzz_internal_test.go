package restore

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// fuzzTarEntry is one entry of a seed archive; Body is a regular file's.
type fuzzTarEntry struct {
	tar.Header
	Body string
}

func fuzzTar(f *testing.F, format tar.Format, entries ...fuzzTarEntry) []byte {
	f.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		h.Format = format
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			f.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			f.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}

// maxFuzzTarBytes bounds what one input may make extract write: a sparse
// entry (GNU or PAX) can declare gigabytes in a few bytes.
const maxFuzzTarBytes = 8 << 20

// FuzzExtract unpacks arbitrary tar streams into a fresh directory. It
// never panics, never writes beside or above the target (the target's
// parent holds only the target afterwards), leaves only private
// directories and regular files with one link, and when it succeeds each
// file holds what the archive's last entry of that name held.
func FuzzExtract(f *testing.F) {
	dir := func(name string) fuzzTarEntry {
		return fuzzTarEntry{Header: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o700}}
	}
	file := func(name, body string) fuzzTarEntry {
		return fuzzTarEntry{Header: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o600}, Body: body}
	}
	// base.tar as PostgreSQL 15's BASE_BACKUP sends it (ustar).
	base := []fuzzTarEntry{
		file("backup_label", "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: pgward\n"),
		file("tablespace_map", "16385 /srv/tbs\n"),
		file("PG_VERSION", "15\n"),
		dir("global"), file("global/pg_control", "\x00\x01control"),
		dir("base"), dir("base/1"), file("base/1/1259", "heap page"),
		dir("pg_wal"), dir("pg_wal/archive_status"),
		dir("pg_tblspc"),
	}
	f.Add(fuzzTar(f, tar.FormatUSTAR, base...))
	f.Add(fuzzTar(f, tar.FormatPAX, base...))
	f.Add(fuzzTar(f, tar.FormatGNU, base...))
	for _, evil := range [][]fuzzTarEntry{
		{file("../evil", "x")},
		{file("base/../../evil", "x")},
		{file("/tmp/evil", "x")},
		{dir("a"), file("a/./b", "1"), file("a/b", "2")},
		{file("a", "file"), file("a/b", "under a file")},
		{dir("a"), file("a", "over a directory")},
		{{Header: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc"}}},
		{file("a", "x"), {Header: tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}}},
		{{Header: tar.Header{Name: "fifo", Typeflag: tar.TypeFifo}}},
		{{Header: tar.Header{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}},
		{file(".", "x")},
		{dir(".."), file("x", "y")},
	} {
		f.Add(fuzzTar(f, tar.FormatPAX, evil...))
	}
	f.Add([]byte{})
	f.Add(make([]byte, 1024)) // the end-of-archive marker alone

	f.Fuzz(func(t *testing.T, b []byte) {
		// What the archive holds, as a second reader sees it; inputs that
		// would write too much are skipped.
		last := map[string][]byte{}
		var total int64
		tr := tar.NewReader(bytes.NewReader(b))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Size < 0 || total+h.Size > maxFuzzTarBytes {
				return
			}
			total += h.Size
			if h.Typeflag == tar.TypeReg {
				body, err := io.ReadAll(tr)
				if err != nil {
					break
				}
				last[filepath.Clean(filepath.FromSlash(h.Name))] = body
			}
		}

		parent := t.TempDir()
		dest := filepath.Join(parent, "pgdata")
		if err := os.Mkdir(dest, 0o700); err != nil {
			t.Fatal(err)
		}
		err := extract(tar.NewReader(bytes.NewReader(b)), dest)

		if entries, rerr := os.ReadDir(parent); rerr != nil || len(entries) != 1 || entries[0].Name() != "pgdata" || !entries[0].IsDir() {
			t.Fatalf("extract (%v) left %v beside the target (%v)", err, entries, rerr)
		}
		onDisk := map[string]bool{}
		werr := filepath.WalkDir(dest, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dest, path)
			fi, err := os.Lstat(path)
			if err != nil {
				return err
			}
			switch {
			case fi.IsDir():
				if fi.Mode().Perm()&0o077 != 0 && path != dest {
					t.Errorf("directory %s has mode %v", rel, fi.Mode())
				}
			case fi.Mode().IsRegular():
				if fi.Mode().Perm() != 0o600 {
					t.Errorf("file %s has mode %v, want 0600", rel, fi.Mode())
				}
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink != 1 {
					t.Errorf("file %s has %d links", rel, st.Nlink)
				}
				onDisk[rel] = true
			default:
				t.Errorf("extract (%v) made %s, of mode %v", err, rel, fi.Mode())
			}
			return nil
		})
		if werr != nil {
			t.Fatalf("walk %s: %v", dest, werr)
		}
		if t.Failed() {
			t.FailNow()
		}
		if err != nil {
			return
		}
		// Success: the files are exactly the archive's, with the last
		// content given for each name.
		for name, body := range last {
			got, rerr := os.ReadFile(filepath.Join(dest, name))
			if rerr != nil || !bytes.Equal(got, body) {
				t.Fatalf("%s holds %q (%v), the archive's last entry %q", name, got, rerr, body)
			}
		}
		for name := range onDisk {
			if _, ok := last[name]; !ok {
				t.Fatalf("extract wrote %s, which the archive does not hold", name)
			}
		}
	})
}
