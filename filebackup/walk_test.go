package filebackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWalk(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string, data string) {
		t.Helper()
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	mk("b/file.txt", "hello")
	mk("a/new\nline", "x")
	mk("a/bad\xffutf8", "y")
	mk("a/with space", "z")
	mk("cache/big.tmp", "excluded")
	mk("a/skip.tmp", "excluded by base name")
	os.Symlink("../b/file.txt", filepath.Join(root, "a/link"))
	os.Link(filepath.Join(root, "b/file.txt"), filepath.Join(root, "c-hardlink"))
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	hasXattr := unix.Setxattr(filepath.Join(root, "b/file.txt"), "user.pgward-test", []byte("v1"), 0) == nil

	var warned []string
	nodes := map[string]Node{}
	var order []string
	err := Walk(root, WalkOptions{Exclude: []string{"cache", "*.tmp"}, Warn: func(p string, err error) { warned = append(warned, p) }},
		func(full string, n Node) error {
			if err := n.Validate(); err != nil {
				t.Errorf("walked an invalid node: %v", err)
			}
			nodes[string(n.Path)] = n
			order = append(order, string(n.Path))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"", "a", "a/bad\xffutf8", "a/link", "a/new\nline", "a/with space", "b", "b/file.txt", "c-hardlink", "fifo"}
	if strings.Join(order, "|") != strings.Join(want, "|") {
		t.Errorf("walked %q\nwant %q", order, want)
	}
	if n := nodes["a/link"]; n.Type != TypeSymlink || n.Target == nil || *n.Target != "../b/file.txt" {
		t.Errorf("symlink: %+v", n)
	}
	if n := nodes["c-hardlink"]; n.HardLink == nil || *n.HardLink != "b/file.txt" {
		t.Errorf("hard link: %+v", n)
	}
	if n := nodes["b/file.txt"]; n.Type != TypeFile || n.Size != 5 || n.Mode != 0o640 || n.HardLink != nil || n.MTime == 0 || n.User == "" {
		t.Errorf("file: %+v", n)
	}
	if hasXattr && string(nodes["b/file.txt"].Xattrs["user.pgward-test"]) != "v1" {
		t.Errorf("xattrs: %v", nodes["b/file.txt"].Xattrs)
	}
	if nodes["fifo"].Type != TypeFIFO || nodes["b"].Type != TypeDir {
		t.Errorf("types: fifo %q, dir %q", nodes["fifo"].Type, nodes["b"].Type)
	}
	if len(warned) != 0 {
		t.Errorf("warned about %v", warned)
	}
	if err := Walk(root, WalkOptions{Exclude: []string{"[bad"}}, func(string, Node) error { return nil }); err == nil || !strings.Contains(err.Error(), "--exclude") {
		t.Errorf("a bad glob: %v", err)
	}
}

// An entry that cannot be read (here: a directory removed while the walk
// reaches it, as on a live system; unreadable ones go the same way) is
// warned about and the walk goes on.
func TestWalkWarnsAndGoesOn(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "going", "deep"), 0o755)
	os.WriteFile(filepath.Join(root, "z.txt"), []byte("after"), 0o644)
	var warned []string
	seen := map[string]bool{}
	err := Walk(root, WalkOptions{Warn: func(p string, err error) { warned = append(warned, p) }}, func(full string, n Node) error {
		seen[string(n.Path)] = true
		if n.Path == "going" {
			os.RemoveAll(full) // before the walk lists it
		}
		return nil
	})
	if err != nil || len(warned) != 1 || !strings.HasSuffix(warned[0], "going") || !seen["z.txt"] || seen["going/deep"] {
		t.Errorf("err %v, warned %v, seen %v", err, warned, seen)
	}
	// Without Warn, the first such error stops the walk, naming the path.
	os.MkdirAll(filepath.Join(root, "going"), 0o755)
	err = Walk(root, WalkOptions{}, func(full string, n Node) error {
		if n.Path == "going" {
			os.RemoveAll(full)
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "going") {
		t.Errorf("without Warn: %v", err)
	}
}

// mkTree makes a small tree with the kinds of entries a snapshot records.
func mkTree(t *testing.T, root string) {
	t.Helper()
	for rel, data := range map[string]string{"b/file.txt": "hello", "a/new\nline": "x", "a/bad\xffutf8": "y", "a/with space": "z"} {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("../b/file.txt", filepath.Join(root, "a/link"))
	os.Link(filepath.Join(root, "b/file.txt"), filepath.Join(root, "c-hardlink"))
}
