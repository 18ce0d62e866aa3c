package restore

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

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

// Prepare checks that pgdata may be restored into (CheckDataDir), makes
// it an empty directory with mode 0700 and marks it incomplete. With
// force, it removes the contents of the data directory it replaces, and
// nothing else.
func Prepare(pgdata, backupID string, force bool) error {
	if err := CheckDataDir(pgdata, force); err != nil {
		return err
	}
	if err := emptyDir(pgdata); err != nil {
		return err
	}
	marker := filepath.Join(pgdata, IncompleteMarker)
	if err := os.WriteFile(marker, []byte("pgward restore of backup "+backupID+" did not finish: do not start this cluster\n"), 0o600); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// Unpack writes the archives of backup into pgdata, which Prepare made
// ready, and each tablespace where PlanTablespaces(b, pgdata, tsMap)
// says; tablespace_map is rewritten to point at those directories.
//
// Jobs > 1 downloads that many parts ahead into temporary files beside
// the data, while the current one is unsealed and unpacked: the network
// and the CPU then work at the same time.
func Unpack(ctx context.Context, store storage.Backend, opener *seal.Opener, b catalog.BackupInfo, pgdata string, opts UnpackOptions) error {
	tsMap, jobs := opts.TablespaceMap, max(opts.Jobs, 1)
	marker := filepath.Join(pgdata, IncompleteMarker)
	if _, err := os.Stat(marker); err != nil {
		return fmt.Errorf("restore: %s is not prepared: %w", pgdata, err)
	}
	tablespaces, err := PlanTablespaces(b, pgdata, tsMap)
	if err != nil {
		return err
	}
	// Tablespaces are never forced: the location recorded on the source
	// may be a live tablespace of a server on this very host.
	if err := CheckTablespaces(pgdata, tablespaces); err != nil {
		return err
	}
	dirs := map[string]string{}
	for _, ts := range tablespaces {
		if err := os.MkdirAll(ts.Dir, 0o700); err != nil {
			return fmt.Errorf("tablespace %s: %w", ts.OID, err)
		}
		dirs[ts.OID+".tar"] = ts.Dir
	}
	for _, a := range b.Archives {
		dest := pgdata
		if a.Name != "base.tar" {
			dest = dirs[a.Name]
		}
		if err := unpackArchive(ctx, store, opener, a, dest, pgdata, jobs, opts.Progress); err != nil {
			return fmt.Errorf("restore %s: %w", a.Name, err)
		}
		if err := syncFS(dest); err != nil {
			return err
		}
	}
	// A backup of a standby would start as one; the restore is a recovery.
	os.Remove(filepath.Join(pgdata, "standby.signal"))
	return writeTablespaceMap(filepath.Join(pgdata, "tablespace_map"), tablespaces)
}

// UnpackOptions say how to unpack.
type UnpackOptions struct {
	TablespaceMap map[string]string // OID → directory (PlanTablespaces)
	Force         bool              // replace a data directory (never a tablespace)
	Jobs          int               // parts downloaded ahead
	Progress      func(n int64)     // told of the stored bytes read, when set
}

// countingReader tells add of every byte read through it.
type countingReader struct {
	r   io.Reader
	add func(int64)
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.add(int64(n))
	return n, err
}

// writeTablespaceMap rewrites tablespace_map, from which PostgreSQL makes
// the pg_tblspc links at startup, to name exactly the tablespaces that
// were restored, at the directories they were restored to. An entry of
// the backup's map without an archive is refused: PostgreSQL would link
// it to wherever it says.
func writeTablespaceMap(path string, tablespaces []Tablespace) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("tablespace map: %w", err)
	}
	if errors.Is(err, fs.ErrNotExist) && len(tablespaces) == 0 {
		return nil
	}
	restored := map[string]bool{}
	for _, ts := range tablespaces {
		restored[ts.OID] = true
	}
	for _, e := range parseTablespaceMap(old) {
		if !restored[e.oid] {
			return fmt.Errorf("the backup's tablespace_map names tablespace %s at %s, but the backup has no archive for it: refused (PostgreSQL would link its data there)", e.oid, strconv.Quote(e.path))
		}
	}
	var b strings.Builder
	for _, ts := range tablespaces {
		// read_tablespace_map: a backslash escapes the next character.
		// Newlines and carriage returns are refused in locations.
		b.WriteString(ts.OID + " " + strings.ReplaceAll(ts.Dir, `\`, `\\`) + "\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

type tablespaceMapEntry struct{ oid, path string }

// parseTablespaceMap reads tablespace_map as PostgreSQL's
// read_tablespace_map does: lines "OID PATH" ended by an unescaped
// newline or carriage return, a backslash escaping the next character.
func parseTablespaceMap(data []byte) []tablespaceMapEntry {
	var out []tablespaceMapEntry
	var line []byte
	escaped := false
	flush := func() {
		if len(line) > 0 {
			oid, path, _ := strings.Cut(string(line), " ")
			out = append(out, tablespaceMapEntry{oid, path})
		}
		line = line[:0]
	}
	for _, c := range data {
		switch {
		case !escaped && (c == '\n' || c == '\r'):
			flush()
		case !escaped && c == '\\':
			escaped = true
		default:
			line = append(line, c)
			escaped = false
		}
	}
	flush()
	return out
}

// Finish removes the incomplete marker: the data directory is whole.
func Finish(pgdata string) error {
	if err := os.Remove(filepath.Join(pgdata, IncompleteMarker)); err != nil {
		return err
	}
	return syncFS(pgdata)
}

// CheckDataDir refuses, touching nothing, a data directory pgward must
// not restore into: a relative or unclean path, a system directory, a
// directory inside another data directory, and a directory that is not
// empty, unless force is given and it is a PostgreSQL data directory (its
// own PG_VERSION at the top, or an unfinished pgward restore) with no
// postmaster.pid, no other data directory (PG_VERSION and global/) and
// no mount point anywhere below it. Symbolic links on the path are
// followed for these checks.
func CheckDataDir(pgdata string, force bool) error {
	if err := checkPathValue(pgdata); err != nil {
		return fmt.Errorf("--pgdata %w", err)
	}
	if filepath.Clean(pgdata) != pgdata {
		return fmt.Errorf("--pgdata %s is not a clean path: give %s", strconv.Quote(pgdata), filepath.Clean(pgdata))
	}
	if err := checkSystemDir(pgdata, systemTrees); err != nil {
		return fmt.Errorf("--pgdata %w", err)
	}
	real, err := resolveExisting(pgdata)
	if err != nil {
		return fmt.Errorf("--pgdata %s: %w", pgdata, err)
	}
	if real != pgdata {
		if err := checkSystemDir(real, systemTrees); err != nil {
			return fmt.Errorf("--pgdata %s leads to %s: %w", pgdata, real, err)
		}
	}
	if outer, err := enclosingDataDir(real); err != nil {
		return fmt.Errorf("--pgdata %s: %w", pgdata, err)
	} else if outer != "" {
		return fmt.Errorf("--pgdata %s is inside the data directory %s (it has PG_VERSION): restore elsewhere", pgdata, outer)
	}
	fi, err := os.Stat(real)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("restore into %s: %w", pgdata, err)
	case !fi.IsDir():
		return fmt.Errorf("--pgdata %s is not a directory", pgdata)
	}
	entries, err := os.ReadDir(real)
	switch {
	case err != nil:
		return fmt.Errorf("restore into %s: %w", pgdata, err)
	case len(entries) == 0:
		return nil
	case !force:
		return fmt.Errorf("%s is not empty: pgward restores only into an empty directory (or give --force to replace the PostgreSQL data directory it holds)", pgdata)
	}
	found, err := inspectTree(real)
	if err != nil {
		return fmt.Errorf("--force: cannot look through %s, so it is not emptied: %w", pgdata, err)
	}
	switch {
	case found.pid != "":
		return fmt.Errorf("--force refused: %s exists: a PostgreSQL server may be running on %s; stop it (or, if no server runs there, remove the file), or restore elsewhere. Nothing was changed",
			found.pid, filepath.Dir(found.pid))
	case found.dataDir != "":
		return fmt.Errorf("--force refused: %s holds another data directory, %s (it has PG_VERSION): --force replaces one data directory, never a tree that holds one; give that directory itself or an empty one. Nothing was changed",
			pgdata, found.dataDir)
	case found.mount != "":
		return fmt.Errorf("--force refused: a file system is mounted at %s, inside %s: --force does not empty across mount points; unmount it or restore elsewhere. Nothing was changed",
			found.mount, pgdata)
	}
	_, verr := os.Lstat(filepath.Join(real, "PG_VERSION"))
	_, merr := os.Lstat(filepath.Join(real, IncompleteMarker))
	if verr != nil && merr != nil {
		return fmt.Errorf("--force refused: %s is not empty and is not a PostgreSQL data directory (no PG_VERSION at its top): --force replaces only a data directory; give an empty or new directory. Nothing was changed", pgdata)
	}
	return nil
}

// CheckTablespaces refuses, touching nothing, tablespace directories that
// exist and are not empty, or that lie (through symbolic links) in a
// system directory, in a data directory or overlap pgdata.
func CheckTablespaces(pgdata string, tablespaces []Tablespace) error {
	realData, err := resolveExisting(pgdata)
	if err != nil {
		return fmt.Errorf("--pgdata %s: %w", pgdata, err)
	}
	for _, ts := range tablespaces {
		fail := func(err error) error {
			return fmt.Errorf("tablespace %s: %w; restore it elsewhere with --tablespace-map %s=DIR", ts.OID, err, ts.OID)
		}
		if err := checkTablespaceDir(ts.Dir, pgdata); err != nil {
			return fail(err)
		}
		real, err := resolveExisting(ts.Dir)
		if err != nil {
			return fail(err)
		}
		if err := checkTablespaceDir(real, realData); err != nil {
			return fail(fmt.Errorf("%s leads to %s: %w", ts.Dir, real, err))
		}
		if outer, err := enclosingDataDir(real); err != nil {
			return fail(err)
		} else if outer != "" {
			return fail(fmt.Errorf("%s is inside the data directory %s (it has PG_VERSION)", ts.Dir, outer))
		}
		entries, err := os.ReadDir(real)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fail(err)
		case len(entries) > 0:
			return fail(fmt.Errorf("%s is not empty (--force never applies to tablespaces: on the source's host it is live)", ts.Dir))
		}
	}
	return nil
}

// resolveExisting follows the symbolic links of the longest existing
// prefix of the absolute path p.
func resolveExisting(p string) (string, error) {
	rest := ""
	for cur := p; ; cur = filepath.Dir(cur) {
		real, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		if cur == "/" {
			return p, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
	}
}

// enclosingDataDir returns the nearest directory above dir that is a
// data directory (isDataDir), or else the nearest that holds PG_VERSION
// (a database or tablespace directory of one), or "".
func enclosingDataDir(dir string) (string, error) {
	first := ""
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		_, err := os.Lstat(filepath.Join(p, "PG_VERSION"))
		switch {
		case err == nil && isDataDir(p):
			return p, nil
		case err == nil && first == "":
			first = p
		case err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) && !errors.Is(err, unix.ENOTDIR):
			return "", err
		}
		if p == "/" {
			return first, nil
		}
	}
}

// isDataDir reports whether dir looks like a PostgreSQL data directory:
// PG_VERSION and global/. (Each database's directory, base/OID, has a
// PG_VERSION of its own, but no global/.)
func isDataDir(dir string) bool {
	if _, err := os.Lstat(filepath.Join(dir, "PG_VERSION")); err != nil {
		return false
	}
	fi, err := os.Lstat(filepath.Join(dir, "global"))
	return err == nil && fi.IsDir()
}

// treeFindings are what inspectTree found below a directory.
type treeFindings struct {
	pid     string // a postmaster.pid
	dataDir string // a data directory below the top (isDataDir)
	mount   string // a mount point
}

// inspectTree walks dir without following links or crossing mount
// points, looking for what --force must not remove.
func inspectTree(dir string) (treeFindings, error) {
	var f treeFindings
	var top unix.Stat_t
	if err := unix.Lstat(dir, &top); err != nil {
		return f, err
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if d.Name() == "postmaster.pid" {
			f.pid = p
			return fs.SkipAll
		}
		if d.Name() == "PG_VERSION" && filepath.Dir(p) != dir && f.dataDir == "" && isDataDir(filepath.Dir(p)) {
			f.dataDir = filepath.Dir(p)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != top.Dev {
			if f.mount == "" {
				f.mount = p
			}
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	return f, err
}

// emptyDir makes dir an empty directory with mode 0700: created if
// missing, else its entries removed (CheckDataDir has allowed it).
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		return fmt.Errorf("restore into %s: %w", dir, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("empty %s: %w", dir, err)
		}
	}
	return os.Chmod(dir, 0o700)
}

// unpackArchive streams the parts of one archive, in order, through one
// tar reader into dest. What follows the tar's end-of-archive marker (a
// tar writer's record padding) is read to the end and must be zeros: the
// writer side verifies every part's bytes, so it must see them all.
func unpackArchive(ctx context.Context, store storage.Backend, opener *seal.Opener, a catalog.BackupArchive, dest, pgdata string, jobs int, progress func(int64)) error {
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
				var sealed io.Reader = rc
				if progress != nil {
					sealed = countingReader{rc, progress}
				}
				err = copyPart(opener, a.Expect(p), sealed, pw)
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
	err := extractStream(pr, dest)
	pr.CloseWithError(err) // stops the reader goroutine early on error
	if derr := <-done; err == nil {
		err = derr
	}
	return err
}

// extractStream unpacks the tar stream r into dest, then reads what
// follows its end-of-archive marker to the end of r: the writer of r
// sees every byte taken, and only zeros (record padding) may follow.
func extractStream(r io.Reader, dest string) error {
	if err := extract(tar.NewReader(r), dest); err != nil {
		return err
	}
	return drainZeros(r)
}

// drainZeros reads r to its end and refuses anything but zero bytes.
func drainZeros(r io.Reader) error {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		m, err := r.Read(buf)
		for i, c := range buf[:m] {
			if c != 0 {
				return fmt.Errorf("read tar: data after the end-of-archive marker (a non-zero byte %d bytes past it): the archive is malformed", n+int64(i))
			}
		}
		n += int64(m)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
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

// copyPart writes the verified plaintext of the part want describes to
// w. The reader checks the part against backup.json (size, checksum) and,
// as the Opener's trust requires, its signature, before it reports the
// end.
func copyPart(opener *seal.Opener, want seal.Expect, sealed io.Reader, w io.Writer) error {
	if want.Checksum == "" {
		return fmt.Errorf("%s: backup.json records no checksum for it, so it cannot be verified", want.Key)
	}
	r, err := opener.NewReader(sealed, want)
	if err != nil {
		return fmt.Errorf("open %s: %w", want.Key, err)
	}
	defer r.Close()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("read %s: %w", want.Key, err)
	}
	return nil
}

// extract writes tar entries under dest, refusing any that would land
// outside it: absolute names, "..", links, and paths through symlinks.
func extract(tr *tar.Reader, dest string) error {
	buf := make([]byte, 1<<20) // a relation file's 1 MiB in one write, not 32
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
			if err := writeFile(path, tr, h, buf); err != nil {
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

func writeFile(path string, r io.Reader, h *tar.Header, buf []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, os.FileMode(h.Mode)&0o600|0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(onlyWriter{f}, r, buf)
	if err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	// Start writing the file back now, without waiting: the disk then
	// works while the next files are unsealed, and the one sync at the
	// end finds little left to do.
	if n >= writeBackMin {
		unix.SyncFileRange(int(f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	return f.Close()
}

// writeBackMin is the size from which a restored file's writeback is
// started as soon as it is written.
const writeBackMin = 1 << 20

// onlyWriter hides os.File's ReadFrom, which would copy through its own
// 32 KiB buffer.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

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
