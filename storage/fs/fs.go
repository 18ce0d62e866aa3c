// Package fs is a storage.Backend on a local directory: the embedded default
// repository. Writes are atomic and durable (temp file, fsync, rename, fsync
// of the directory); object metadata lives in the file's user.pgward.*
// extended attributes, set before the rename so it appears with the data.
package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/storage"
)

// tempPrefix marks files being written; List never shows them.
const tempPrefix = ".pgward-tmp-"

const xattrPrefix = "user.pgward."

// Backend stores objects as files under Root.
type Backend struct {
	root string
}

var _ storage.Backend = (*Backend)(nil)

// New returns a Backend rooted at dir, which must exist: pgward never
// creates it, so that an unmounted filesystem is not mistaken for an empty
// repository (WAL written under the mount point, recovery ending early).
func New(dir string) (*Backend, error) {
	if dir == "" || !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("file repository path %q must be absolute (file:///path)", dir)
	}
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("repository directory %s does not exist: create it (mkdir, owned by the user pgward runs as); "+
			"pgward does not, so that a missing mount is never taken for an empty repository", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("repository directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("repository path %s is not a directory", dir)
	}
	return &Backend{root: filepath.Clean(dir)}, nil
}

func (b *Backend) path(key string) (string, error) {
	if !storage.ValidKey(key) {
		return "", fmt.Errorf("invalid object key %q", key)
	}
	return filepath.Join(b.root, filepath.FromSlash(key)), nil
}

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return b.write(ctx, key, r, size, meta, true)
}

// Create implements storage.Backend: link(2) publishes the object only
// if the name is free, atomically.
func (b *Backend) Create(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return b.write(ctx, key, r, size, meta, false)
}

func (b *Backend) write(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string, replace bool) (err error) {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, tempPrefix+filepath.Base(p)+"-"+hex.EncodeToString(rnd[:]))
	var f *os.File
	// A Delete may remove the directory once empty, between its creation
	// and the temporary file's: then make it again.
	for attempt := 0; ; attempt++ {
		if err := mkdirAllSync(dir); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt == 3 {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
			b.removeEmptyDirs(dir)
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("put %s: write: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("put %s: wrote %d bytes, expected %d", key, n, size)
	}
	for k, v := range meta {
		if err := unix.Fsetxattr(int(f.Fd()), xattrPrefix+k, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				return fmt.Errorf("put %s: the filesystem under %s does not support user extended attributes, which pgward needs to record checksums; use ext4, xfs or btrfs: %w", key, b.root, err)
			}
			return fmt.Errorf("put %s: set attribute %s: %w", key, k, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("put %s: fsync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("put %s: close: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if replace {
		if err := os.Rename(tmp, p); err != nil {
			return fmt.Errorf("put %s: rename: %w", key, err)
		}
	} else {
		err := os.Link(tmp, p)
		os.Remove(tmp)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("create %s: %w", key, storage.ErrExist)
		}
		if err != nil {
			return fmt.Errorf("create %s: link: %w", key, err)
		}
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, storage.ObjectInfo{}, notExist(key, err)
	}
	info, err := describe(f, key)
	if err != nil {
		f.Close()
		return nil, storage.ObjectInfo{}, err
	}
	return f, info, nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	p, err := b.path(key)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return storage.ObjectInfo{}, notExist(key, err)
	}
	defer f.Close()
	return describe(f, key)
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	// Walk only the deepest directory the prefix names.
	start := b.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(b.root, filepath.FromSlash(prefix[:i]))
	}
	var infos []storage.ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(b.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while listing
			}
			return err
		}
		infos = append(infos, storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	// WalkDir's per-directory order differs from lexical key order when a
	// name sorts below '/' (e.g. "a.b" < "a/b"), so sort the whole listing.
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	p, err := b.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	b.removeEmptyDirs(filepath.Dir(p))
	return nil
}

// removeEmptyDirs removes dir and its parents while they are empty, up to
// the root (rmdir refuses a directory that is not): a deleted backup or
// dump, or a failed write, leaves no empty directories behind.
func (b *Backend) removeEmptyDirs(dir string) {
	for ; dir != b.root && strings.HasPrefix(dir, b.root+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			return
		}
	}
}

func notExist(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w", key, storage.ErrNotExist)
	}
	return fmt.Errorf("open %s: %w", key, err)
}

func describe(f *os.File, key string) (storage.ObjectInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("stat %s: %w", key, err)
	}
	if fi.IsDir() {
		return storage.ObjectInfo{}, fmt.Errorf("%s: %w", key, storage.ErrNotExist)
	}
	meta, err := readXattrs(int(f.Fd()))
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("read attributes of %s: %w", key, err)
	}
	return storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Metadata: meta}, nil
}

func readXattrs(fd int) (map[string]string, error) {
	buf := make([]byte, 1024)
	n, err := unix.Flistxattr(fd, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if errors.Is(err, unix.ERANGE) {
		if n, err = unix.Flistxattr(fd, nil); err == nil {
			buf = make([]byte, n)
			n, err = unix.Flistxattr(fd, buf)
		}
	}
	if err != nil {
		return nil, err
	}
	var meta map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		k, ok := strings.CutPrefix(name, xattrPrefix)
		if !ok || k == "" {
			continue
		}
		val := make([]byte, 256)
		vn, err := unix.Fgetxattr(fd, name, val)
		if errors.Is(err, unix.ERANGE) {
			if vn, err = unix.Fgetxattr(fd, name, nil); err == nil {
				val = make([]byte, vn)
				vn, err = unix.Fgetxattr(fd, name, val)
			}
		}
		if err != nil {
			return nil, err
		}
		if meta == nil {
			meta = make(map[string]string)
		}
		meta[k] = string(val[:vn])
	}
	return meta, nil
}

// mkdirAllSync creates dir and any missing parents, fsyncing each parent
// whose entries changed so a crash cannot forget a directory that a durable
// object lives in.
func mkdirAllSync(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSync(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a long copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
