package restore

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// snapshot records every path under root with its type, size, mode,
// modification time and (for files) content: two equal snapshots mean
// nothing was touched.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	for p, v := range before {
		if after[p] != v {
			t.Errorf("%s changed: %q, was %q", p, after[p], v)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s was created", p)
		}
	}
}

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCheckDataDir(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, p string) string // builds a tree at p, returns --pgdata
		force bool
		want  string // "" accepts; else the exact error, with {P} for p
	}{
		{"missing", func(t *testing.T, p string) string { return filepath.Join(p, "new") }, false, ""},
		{"empty", func(t *testing.T, p string) string { return p }, false, ""},
		{"empty with --force", func(t *testing.T, p string) string { return p }, true, ""},
		{"non-empty without --force", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			return p
		}, false, "{P} is not empty: pgward restores only into an empty directory (or give --force to replace the PostgreSQL data directory it holds)"},
		{"a data directory with --force", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "base", "1", "1259"), "x")
			return p
		}, true, ""},
		{"a data directory's databases and tablespaces have PG_VERSION too", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "global", "pg_control"), "x")
			mkfile(t, filepath.Join(p, "base", "1", "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "base", "16384", "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "pg_tblspc", "16390", "PG_15_202209061", "16384", "PG_VERSION"), "15\n")
			return p
		}, true, ""},
		{"an unfinished restore with --force", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, IncompleteMarker), "x")
			mkfile(t, filepath.Join(p, "pg_wal", ".pgward-prefetch", "000000010000000000000003"), "x")
			return p
		}, true, ""},
		{"postmaster.pid at the top", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "postmaster.pid"), "123\n")
			return p
		}, true, "--force refused: {P}/postmaster.pid exists: a PostgreSQL server may be running on {P}; stop it (or, if no server runs there, remove the file), or restore elsewhere. Nothing was changed"},
		{"postmaster.pid below (P/15/main)", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "15", "main", "postmaster.pid"), "")
			return p
		}, true, "--force refused: {P}/15/main/postmaster.pid exists: a PostgreSQL server may be running on {P}/15/main; stop it (or, if no server runs there, remove the file), or restore elsewhere. Nothing was changed"},
		{"another data directory below", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "old", "main", "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "old", "main", "global", "pg_control"), "x")
			return p
		}, true, "--force refused: {P} holds another data directory, {P}/old/main (it has PG_VERSION): --force replaces one data directory, never a tree that holds one; give that directory itself or an empty one. Nothing was changed"},
		{"not a data directory", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "photos", "cat.jpg"), "x")
			return p
		}, true, "--force refused: {P} is not empty and is not a PostgreSQL data directory (no PG_VERSION at its top): --force replaces only a data directory; give an empty or new directory. Nothing was changed"},
		{"inside a data directory", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			return filepath.Join(p, "base", "restore")
		}, false, "--pgdata {P}/base/restore is inside the data directory {P} (it has PG_VERSION): restore elsewhere"},
		{"inside a database of a data directory", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_VERSION"), "15\n")
			mkfile(t, filepath.Join(p, "global", "pg_control"), "x")
			mkfile(t, filepath.Join(p, "base", "1", "PG_VERSION"), "15\n")
			return filepath.Join(p, "base", "1", "restore")
		}, false, "--pgdata {P}/base/1/restore is inside the data directory {P} (it has PG_VERSION): restore elsewhere"},
		{"inside a tablespace's database directory", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "PG_15_202209061", "16384", "PG_VERSION"), "15\n")
			return filepath.Join(p, "PG_15_202209061", "16384", "restore")
		}, false, "--pgdata {P}/PG_15_202209061/16384/restore is inside the data directory {P}/PG_15_202209061/16384 (it has PG_VERSION): restore elsewhere"},
		{"a file", func(t *testing.T, p string) string {
			mkfile(t, filepath.Join(p, "f"), "x")
			return filepath.Join(p, "f")
		}, true, "--pgdata {P}/f is not a directory"},
		{"a link to /", func(t *testing.T, p string) string {
			os.Symlink("/", filepath.Join(p, "root"))
			return filepath.Join(p, "root")
		}, true, "--pgdata {P}/root leads to /: / is a system directory: pgward never restores into it; give a directory of its own below it"},
		{"a link to /etc, then below", func(t *testing.T, p string) string {
			os.Symlink("/etc", filepath.Join(p, "conf"))
			return filepath.Join(p, "conf", "pg")
		}, false, "--pgdata {P}/conf/pg leads to /etc/pg: /etc/pg is inside the system directory /etc: pgward never restores there"},
		{"relative", func(t *testing.T, p string) string { return "data" }, false, `--pgdata "data" is not absolute: give an absolute path`},
		{"unclean", func(t *testing.T, p string) string { return p + "/x/../y" }, false, `--pgdata "{P}/x/../y" is not a clean path: give {P}/y`},
		{"a newline", func(t *testing.T, p string) string { return p + "/a\nb" }, false, `--pgdata "{P}/a\nb" holds the control character U+000A at byte LEN: refused, a recovery setting is one line`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "P")
			os.Mkdir(p, 0o700)
			pgdata := tc.setup(t, p)
			before := snapshot(t, filepath.Dir(p))
			err := CheckDataDir(pgdata, tc.force)
			want := strings.ReplaceAll(tc.want, "{P}", p)
			want = strings.ReplaceAll(want, "LEN", fmt.Sprint(len(p)+2))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("CheckDataDir(%s) = %v, want it accepted", pgdata, err)
			case tc.want != "" && (err == nil || err.Error() != want):
				t.Fatalf("CheckDataDir(%s) =\n  %v\nwant\n  %s", pgdata, err, want)
			}
			sameSnapshot(t, before, snapshot(t, filepath.Dir(p)))
		})
	}
}

func TestCheckDataDirRefusesSystemDirectories(t *testing.T) {
	for dir, want := range map[string]string{
		"/":                   "--pgdata / is a system directory: pgward never restores into it; give a directory of its own below it",
		"/etc":                "--pgdata /etc is a system directory: pgward never restores into it; give a directory of its own below it",
		"/usr":                "--pgdata /usr is a system directory",
		"/var":                "--pgdata /var is a system directory",
		"/var/lib/postgresql": "--pgdata /var/lib/postgresql is a system directory",
		"/home":               "--pgdata /home is a system directory",
		"/root":               "--pgdata /root is a system directory",
		"/bin":                "--pgdata /bin is a system directory",
		"/tmp":                "--pgdata /tmp is a system directory",
		"/etc/postgresql/15":  "--pgdata /etc/postgresql/15 is inside the system directory /etc: pgward never restores there",
		"/proc/1":             "--pgdata /proc/1 is inside the system directory /proc",
		"/sys/fs":             "--pgdata /sys/fs is inside the system directory /sys",
	} {
		for _, force := range []bool{false, true} {
			if err := CheckDataDir(dir, force); err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("CheckDataDir(%s, force %v) = %v, want %q", dir, force, err, want)
			}
		}
	}
}

// A mount point below a --force target is found (and not walked into);
// the test uses a mount point of the host below /dev.
func TestInspectTreeFindsMountPoints(t *testing.T) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Skip("no /proc/self/mountinfo")
	}
	defer f.Close()
	mounts := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 4 {
			mounts[fields[4]] = true
		}
	}
	var parent string
	for m := range mounts {
		if strings.HasPrefix(m, "/dev/") && strings.Count(m, "/") == 2 {
			parent = "/dev"
		}
	}
	if parent == "" {
		t.Skip("no mount point below /dev on this host")
	}
	found, err := inspectTree(parent)
	if err != nil {
		t.Fatal(err)
	}
	if !mounts[found.mount] || found.mount == parent {
		t.Fatalf("inspectTree(%s) found mount point %q; the host's are %v", parent, found.mount, mounts)
	}
}

// --force removes the data directory's own entries; what its links
// (pg_wal, pg_tblspc) point at stays.
func TestPrepareForceRemovesOnlyTheDataDirectory(t *testing.T) {
	base := t.TempDir()
	dir, wal, ts := filepath.Join(base, "data"), filepath.Join(base, "wal"), filepath.Join(base, "ts")
	mkfile(t, filepath.Join(dir, "PG_VERSION"), "15\n")
	mkfile(t, filepath.Join(dir, "base", "1", "1259"), "x")
	mkfile(t, filepath.Join(wal, "000000010000000000000001"), "wal")
	mkfile(t, filepath.Join(ts, "PG_15_202209061", "1", "16391"), "ts")
	os.Symlink(wal, filepath.Join(dir, "pg_wal"))
	os.MkdirAll(filepath.Join(dir, "pg_tblspc"), 0o700)
	os.Symlink(ts, filepath.Join(dir, "pg_tblspc", "16390"))
	walBefore, tsBefore := snapshot(t, wal), snapshot(t, ts)
	if err := Prepare(dir, "B", true); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 || entries[0].Name() != IncompleteMarker {
		t.Errorf("the data directory holds %v, want only the marker", entries)
	}
	sameSnapshot(t, walBefore, snapshot(t, wal))
	sameSnapshot(t, tsBefore, snapshot(t, ts))
}
