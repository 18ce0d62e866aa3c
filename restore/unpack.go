package restore

import (
	"archive/tar"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// IncompleteMarker is present in a data directory while a restore writes
// it; a directory that still has it after pgward exits is unusable.
const IncompleteMarker = "pgward-restore-incomplete"

// ErrUnsafeEntry is returned (wrapped) for a tar entry that would write
// outside the target directory.
var ErrUnsafeEntry = errors.New("unsafe tar entry")

// Prepare checks that pgdata may be restored into (absolute; empty unless
// force), creates it with mode 0700 and marks it incomplete.
func Prepare(pgdata, backupID string, force bool) error {
	if err := prepareDir(pgdata, force); err != nil {
		return err
	}
	marker := filepath.Join(pgdata, IncompleteMarker)
	if err := os.WriteFile(marker, []byte("pgward restore of backup "+backupID+" did not finish: do not start this cluster\n"), 0o600); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// Unpack writes the archives of backup into pgdata, which Prepare made
// ready (and tablespaces to their locations, or to tsMap[oid]).
//
// jobs > 1 downloads that many parts ahead into temporary files beside
// the data, while the current one is unsealed and unpacked: the network
// and the CPU then work at the same time.
func Unpack(ctx context.Context, store storage.Backend, opener *seal.Opener, b catalog.BackupInfo, pgdata string, tsMap map[string]string, force bool, jobs int) error {
	marker := filepath.Join(pgdata, IncompleteMarker)
	if _, err := os.Stat(marker); err != nil {
		return fmt.Errorf("restore: %s is not prepared: %w", pgdata, err)
	}
	for _, a := range b.Archives {
		dest := pgdata
		if a.Name != "base.tar" {
			oid := strings.TrimSuffix(a.Name, ".tar")
			dest = a.Tablespace
			if m, ok := tsMap[oid]; ok {
				dest = m
			}
			if dest == "" || !filepath.IsAbs(dest) {
				return fmt.Errorf("tablespace %s has no absolute location: give --tablespace-map %s=DIR", oid, oid)
			}
			// Never forced: the location recorded on the source may be a
			// live tablespace of the server on this very host.
			if err := prepareDir(dest, false); err != nil {
				return fmt.Errorf("tablespace %s: %w; restore it elsewhere with --tablespace-map %s=DIR", oid, err, oid)
			}
		}
		if err := unpackArchive(ctx, store, opener, a, dest, pgdata, jobs); err != nil {
			return fmt.Errorf("restore %s: %w", a.Name, err)
		}
		if err := syncFS(dest); err != nil {
			return err
		}
	}
	// A backup of a standby would start as one; the restore is a recovery.
	os.Remove(filepath.Join(pgdata, "standby.signal"))
	if len(tsMap) > 0 {
		return remapTablespaces(filepath.Join(pgdata, "tablespace_map"), tsMap)
	}
	return nil
}

// remapTablespaces points tablespace_map, from which PostgreSQL makes the
// pg_tblspc links at startup, at the directories the tablespaces were
// restored to.
func remapTablespaces(path string, tsMap map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("tablespace map: %w", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	for i, line := range lines {
		oid, _, ok := strings.Cut(line, " ")
		if dir, mapped := tsMap[oid]; ok && mapped {
			lines[i] = oid + " " + dir
		}
	}
	return os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// Finish removes the incomplete marker: the data directory is whole.
func Finish(pgdata string) error {
	if err := os.Remove(filepath.Join(pgdata, IncompleteMarker)); err != nil {
		return err
	}
	return syncFS(pgdata)
}

// prepareDir makes dir an empty directory to restore into. With force, a
// directory that holds files is emptied first: files of an earlier
// attempt (its pg_wal, a newer timeline's history) would steer recovery.
// A running server's directory is refused even then.
func prepareDir(dir string, force bool) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s: give an absolute path", dir)
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return fmt.Errorf("restore into %s: %w", dir, err)
	case len(entries) > 0 && !force:
		return fmt.Errorf("%s is not empty: pgward restores only into an empty directory (or give --force to empty it first)", dir)
	case len(entries) > 0:
		if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); err == nil {
			return fmt.Errorf("%s holds postmaster.pid: a server may be running on it; stop it and remove the file, or restore elsewhere", dir)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("empty %s: %w", dir, err)
			}
		}
	}
	return os.Chmod(dir, 0o700)
}

// unpackArchive streams the parts of one archive, in order, through one
// tar reader into dest.
func unpackArchive(ctx context.Context, store storage.Backend, opener *seal.Opener, a catalog.BackupArchive, dest, pgdata string, jobs int) error {
	fetch := newPartFetcher(ctx, store, a.Parts, filepath.Join(pgdata, ".pgward-parts"), jobs)
	defer fetch.close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := func() error {
			for i, p := range a.Parts {
				rc, err := fetch.open(i)
				if err != nil {
					return err
				}
				err = copyPart(opener, p, rc, pw)
				rc.Close()
				if err != nil {
					return err
				}
			}
			return nil
		}()
		pw.CloseWithError(err)
		done <- err
	}()
	err := extract(tar.NewReader(pr), dest)
	pr.CloseWithError(err) // stops the reader goroutine early on error
	if derr := <-done; err == nil {
		err = derr
	}
	return err
}

// partFetcher downloads parts ahead of their use into temporary files.
type partFetcher struct {
	ctx    context.Context
	cancel context.CancelFunc
	store  storage.Backend
	parts  []catalog.BackupPart
	dir    string
	ahead  bool
	ready  []chan error
	sem    chan struct{}
	wg     sync.WaitGroup
}

func newPartFetcher(ctx context.Context, store storage.Backend, parts []catalog.BackupPart, dir string, jobs int) *partFetcher {
	ctx, cancel := context.WithCancel(ctx)
	f := &partFetcher{ctx: ctx, cancel: cancel, store: store, parts: parts, dir: dir, ahead: jobs > 1}
	if !f.ahead {
		return f
	}
	f.sem = make(chan struct{}, jobs-1)
	f.ready = make([]chan error, len(parts))
	for i := range parts {
		f.ready[i] = make(chan error, 1)
	}
	f.wg.Go(func() {
		for i := range parts {
			select {
			case f.sem <- struct{}{}: // released when part i has been used
			case <-ctx.Done():
				return
			}
			f.wg.Go(func() { f.ready[i] <- f.download(i) })
		}
	})
	return f
}

func (f *partFetcher) path(i int) string { return filepath.Join(f.dir, fmt.Sprintf("part-%06d", i)) }

func (f *partFetcher) download(i int) error {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return err
	}
	rc, _, err := f.store.Get(f.ctx, f.parts[i].Key)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", f.parts[i].Key, err)
	}
	defer rc.Close()
	out, err := os.OpenFile(f.path(i), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("fetch %s: %w", f.parts[i].Key, err)
	}
	return out.Close()
}

// open returns part i's sealed bytes: downloaded ahead, or straight from
// the repository.
func (f *partFetcher) open(i int) (io.ReadCloser, error) {
	if !f.ahead {
		rc, _, err := f.store.Get(f.ctx, f.parts[i].Key)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", f.parts[i].Key, err)
		}
		return rc, nil
	}
	select {
	case err := <-f.ready[i]:
		if err != nil {
			return nil, err
		}
	case <-f.ctx.Done():
		return nil, f.ctx.Err()
	}
	file, err := os.Open(f.path(i))
	if err != nil {
		return nil, err
	}
	os.Remove(f.path(i)) // the open file stays readable; nothing is left behind
	<-f.sem
	return file, nil
}

// close stops and waits for the downloads and removes what they left.
func (f *partFetcher) close() {
	f.cancel()
	if f.ahead {
		f.wg.Wait()
		os.RemoveAll(f.dir)
	}
}

func copyPart(opener *seal.Opener, p catalog.BackupPart, sealed io.Reader, w io.Writer) error {
	r, err := opener.NewReader(sealed)
	if err != nil {
		return fmt.Errorf("open %s: %w", p.Key, err)
	}
	defer r.Close()
	h := xxh3.New128()
	n, err := io.Copy(io.MultiWriter(w, h), r)
	if err != nil {
		return fmt.Errorf("read %s: %w", p.Key, err)
	}
	if n != p.Bytes {
		return fmt.Errorf("%s: %w: %d bytes, backup.json says %d", p.Key, seal.ErrCorrupt, n, p.Bytes)
	}
	if sum := h.Sum128().Bytes(); p.Checksum != "" && hex.EncodeToString(sum[:]) != p.Checksum {
		return fmt.Errorf("%s: %w: its checksum differs from the one backup.json records", p.Key, seal.ErrCorrupt)
	}
	return nil
}

// extract writes tar entries under dest, refusing any that would land
// outside it: absolute names, "..", links, and paths through symlinks.
func extract(tr *tar.Reader, dest string) error {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(h.Name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("%w: %q would be written outside %s", ErrUnsafeEntry, h.Name, dest)
		}
		path := filepath.Join(dest, name)
		if err := checkNoSymlinkParents(dest, name); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(path, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeFile(path, tr, h); err != nil {
				return err
			}
		case tar.TypeSymlink:
			// PostgreSQL 15 sends tablespace locations in tablespace_map,
			// not as links; a link could point anywhere.
			return fmt.Errorf("%w: symbolic link %q -> %q", ErrUnsafeEntry, h.Name, h.Linkname)
		default:
			return fmt.Errorf("%w: %q has tar type %q", ErrUnsafeEntry, h.Name, h.Typeflag)
		}
	}
}

// checkNoSymlinkParents refuses a path whose existing parents include a
// symbolic link (left by --force over an old directory).
func checkNoSymlinkParents(dest, name string) error {
	p := dest
	for _, part := range strings.Split(filepath.Dir(name), string(filepath.Separator)) {
		if part == "." || part == "" {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%w: %s goes through the symbolic link %s", ErrUnsafeEntry, name, p)
		}
	}
	return nil
}

func writeFile(path string, r io.Reader, h *tar.Header) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, os.FileMode(h.Mode)&0o600|0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// syncFS makes everything written under dir durable with one syncfs(2).
func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
