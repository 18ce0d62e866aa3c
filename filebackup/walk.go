package filebackup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// WalkOptions say what a walk leaves out, and whom it tells of what it
// could not read.
type WalkOptions struct {
	// Exclude are globs (path.Match) matched against each entry's path
	// relative to the root and against its base name.
	Exclude []string
	// OneFileSystem does not descend into directories on another file
	// system than the root's (a mounted /proc, an NFS home).
	OneFileSystem bool
	// Warn is told of each entry that could not be read; the walk goes
	// on, and the backup is then partial. Nil: such an error stops it.
	Warn func(path string, err error)
}

// Walk visits root and every entry below it, in name order, calling fn
// with each entry's full path and its node (without content: Chunks and
// Data are for the reader of the file to fill). A hard link's second
// path names the first in HardLink.
func Walk(root string, opts WalkOptions, fn func(full string, n Node) error) error {
	for _, g := range opts.Exclude {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("--exclude %q: %w", g, err)
		}
	}
	w := walker{opts: opts, fn: fn, links: map[[2]uint64]Name{}, users: map[uint32]string{}, groups: map[uint32]string{}}
	fi, err := os.Lstat(root)
	if err != nil {
		return fmt.Errorf("walk %s: %w", root, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		w.rootDev = uint64(st.Dev)
	}
	return w.visit(root, "", fi)
}

// StatNode is the node of one entry, as a walk records it (the root's
// path, "").
func StatNode(full string) (Node, error) {
	w := walker{links: map[[2]uint64]Name{}, users: map[uint32]string{}, groups: map[uint32]string{}}
	fi, err := os.Lstat(full)
	if err != nil {
		return Node{}, err
	}
	return w.node(full, "", fi)
}

type walker struct {
	opts    WalkOptions
	fn      func(string, Node) error
	rootDev uint64
	links   map[[2]uint64]Name // dev, inode → first path
	users   map[uint32]string
	groups  map[uint32]string
}

func (w *walker) warn(full string, err error) error {
	if w.opts.Warn == nil {
		return fmt.Errorf("%s: %w", full, err)
	}
	w.opts.Warn(full, err)
	return nil
}

func (w *walker) excluded(rel string) bool {
	for _, g := range w.opts.Exclude {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
		if ok, _ := path.Match(g, path.Base(rel)); ok {
			return true
		}
	}
	return false
}

func (w *walker) visit(full, rel string, fi fs.FileInfo) error {
	n, err := w.node(full, rel, fi)
	if err != nil {
		return w.warn(full, err)
	}
	if err := w.fn(full, n); err != nil {
		return err
	}
	if n.Type != TypeDir {
		return nil
	}
	if w.opts.OneFileSystem && n.Dev != w.rootDev {
		return nil // recorded, not entered
	}
	entries, err := os.ReadDir(full)
	if err != nil {
		return w.warn(full, err)
	}
	for _, e := range entries {
		childRel := e.Name()
		if rel != "" {
			childRel = rel + "/" + e.Name()
		}
		if w.excluded(childRel) {
			continue
		}
		childFull := filepath.Join(full, e.Name())
		cfi, err := os.Lstat(childFull)
		if err != nil {
			if err := w.warn(childFull, err); err != nil {
				return err
			}
			continue // gone since the listing, or not readable
		}
		if err := w.visit(childFull, childRel, cfi); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) node(full, rel string, fi fs.FileInfo) (Node, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return Node{}, errors.New("no stat information")
	}
	n := Node{
		Path: Name(rel), Mode: uint32(st.Mode) & 0o7777, UID: st.Uid, GID: st.Gid,
		MTime: st.Mtim.Nano(), CTime: st.Ctim.Nano(), Inode: st.Ino, Dev: uint64(st.Dev), Nlink: uint64(st.Nlink), Size: st.Size,
		User: w.userName(st.Uid), Group: w.groupName(st.Gid),
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		n.Type = TypeFile
	case syscall.S_IFDIR:
		n.Type, n.Size = TypeDir, 0
	case syscall.S_IFLNK:
		target, err := os.Readlink(full)
		if err != nil {
			return Node{}, err
		}
		t := Name(target)
		n.Type, n.Target = TypeSymlink, &t
	case syscall.S_IFIFO:
		n.Type = TypeFIFO
	case syscall.S_IFCHR:
		n.Type, n.Rdev = TypeChar, uint64(st.Rdev)
	case syscall.S_IFBLK:
		n.Type, n.Rdev = TypeBlock, uint64(st.Rdev)
	case syscall.S_IFSOCK:
		n.Type = TypeSocket
	default:
		return Node{}, fmt.Errorf("unknown file type %o", st.Mode&syscall.S_IFMT)
	}
	if n.Type == TypeFile && st.Nlink > 1 && rel != "" {
		key := [2]uint64{n.Dev, n.Inode}
		if first, ok := w.links[key]; ok {
			n.HardLink = &first
		} else {
			w.links[key] = Name(rel)
		}
	}
	n.Xattrs = xattrs(full)
	return n, nil
}

// xattrs reads what extended attributes it may (a file system without
// them, or trusted.* without privilege, gives none).
func xattrs(full string) map[string][]byte {
	size, err := unix.Llistxattr(full, nil)
	if err != nil || size <= 0 {
		return nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(full, buf)
	if err != nil {
		return nil
	}
	out := map[string][]byte{}
	for _, name := range splitNul(buf[:size]) {
		vs, err := unix.Lgetxattr(full, name, nil)
		if err != nil {
			continue
		}
		v := make([]byte, vs)
		if vs, err = unix.Lgetxattr(full, name, v); err != nil {
			continue
		}
		out[name] = v[:vs]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func (w *walker) userName(uid uint32) string {
	if name, ok := w.users[uid]; ok {
		return name
	}
	name := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		name = u.Username
	}
	w.users[uid] = name
	return name
}

func (w *walker) groupName(gid uint32) string {
	if name, ok := w.groups[gid]; ok {
		return name
	}
	name := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(gid), 10)); err == nil {
		name = g.Name
	}
	w.groups[gid] = name
	return name
}
