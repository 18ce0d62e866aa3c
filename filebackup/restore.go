package filebackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// RestoreOptions describe one `files restore`.
type RestoreOptions struct {
	Backend storage.Backend
	Opener  *seal.Opener
	Set     string
	// ID picks a snapshot; else the newest at or before At; else the newest.
	ID     string
	At     time.Time
	Target string
	// Paths limit the restore to these paths of the set (and what lies
	// below them); items are named @crontab/USER and @command/NAME.
	Paths []string
	// Force restores into a target that is not empty, replacing what
	// lies at the snapshot's paths.
	Force bool
	// InstallCrontabs puts each restored crontab back with crontab -u.
	InstallCrontabs bool
	Log             *slog.Logger
	Progress        func(n int64)
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Set        string   `json:"set"`
	ID         string   `json:"id"`
	Target     string   `json:"target"`
	Domains    []string `json:"domains"`
	Unreadable []string `json:"unreadable_domains,omitempty"` // sealed to others: left out
	Entries    int64    `json:"entries"`
	Files      int64    `json:"files"`
	Bytes      int64    `json:"bytes"`
	Warnings   int      `json:"warnings"`
	Seconds    float64  `json:"seconds"`
}

// PickSnapshot returns the snapshot objects (one per domain) of the set's
// run chosen by id, else the newest at or before at, else the newest.
func PickSnapshot(ctx context.Context, b storage.Backend, set, id string, at time.Time) ([]SnapshotRef, error) {
	if err := ValidateSet(set); err != nil {
		return nil, err
	}
	refs, err := ListAll(ctx, b, set)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, fmt.Errorf("set %q has no snapshot in this repository", set)
	}
	want := ""
	switch {
	case id != "":
		want = id
	case !at.IsZero():
		for _, r := range refs {
			if !r.Time.After(at) {
				want = r.ID
			}
		}
		if want == "" {
			return nil, fmt.Errorf("set %q has no snapshot at or before %s (the oldest is %s)", set, at.UTC().Format(time.RFC3339), refs[0].Time.Format(time.RFC3339))
		}
	default:
		want = refs[len(refs)-1].ID
	}
	var out []SnapshotRef
	for _, r := range refs {
		if r.ID == want {
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("set %q has no snapshot %q (see pgward files list --set %s)", set, id, set)
	}
	return out, nil
}

// chunkPlace is where a chunk is, and with which secret it is checked.
type chunkPlace struct {
	IndexEntry
	keyID string
}

// domainReader reads one domain's chunks: its secrets and indexes.
type domainReader struct {
	domain string
	keys   map[string]DomainKey
	places map[string]chunkPlace
}

func openDomain(ctx context.Context, b storage.Backend, o *seal.Opener, domain string) (*domainReader, error) {
	keys, err := LoadDomainKeys(ctx, b, o, domain)
	if err != nil {
		return nil, err
	}
	d := &domainReader{domain: domain, keys: keys, places: map[string]chunkPlace{}}
	err = EachIndex(ctx, b, o, domain, "", func(key string, e IndexEntry) error {
		d.places[e.ID] = chunkPlace{IndexEntry: e, keyID: IndexKeyID(key)}
		return nil
	})
	return d, err
}

// PackObjectKey is where pack id of domain is stored (always sealed).
func PackObjectKey(domain, id string) string {
	return Prefix(domain) + "packs/" + id[:2] + "/" + id + seal.SuffixEncrypted
}

// chunkRef is one place a chunk is written to: a staged file at an offset.
type chunkRef struct {
	file int64
	off  int64
}

// restorer is one restore in progress.
type restorer struct {
	o       RestoreOptions
	ctx     context.Context
	root    *os.Root
	staging string
	res     *RestoreResult
	sel     []string
	uids    map[string]int
	gids    map[string]int
}

// Restore restores a snapshot of a set into Target: every write goes
// through an os.Root, so no name in a snapshot (a symlink, "..") reaches
// outside it. Content is fetched pack by pack, each pack read once.
func Restore(ctx context.Context, o RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	refs, err := PickSnapshot(ctx, o.Backend, o.Set, o.ID, o.At)
	if err != nil {
		return nil, err
	}
	sel, err := selection(o.Paths)
	if err != nil {
		return nil, err
	}
	if err := prepareTarget(o.Target, o.Force); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(o.Target)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rs := &restorer{o: o, ctx: ctx, root: root, sel: sel, uids: map[string]int{}, gids: map[string]int{},
		res: &RestoreResult{Set: o.Set, ID: refs[0].ID, Target: o.Target}}
	rs.staging = ".pgward-restore-" + refs[0].ID
	if err := root.Mkdir(rs.staging, 0o700); err != nil {
		return nil, fmt.Errorf("restore: staging directory: %w", err)
	}
	defer root.RemoveAll(rs.staging)
	for _, ref := range refs {
		if err := rs.restoreDomain(ref); errors.Is(err, seal.ErrWrongIdentity) || errors.Is(err, seal.ErrNoIdentity) {
			rs.res.Unreadable = append(rs.res.Unreadable, ref.Domain)
			o.Log.Warn("part of the set is sealed to other recipients: left out", "domain", ref.Domain)
			continue
		} else if err != nil {
			return nil, err
		}
		rs.res.Domains = append(rs.res.Domains, ref.Domain)
	}
	if len(rs.res.Domains) == 0 {
		return nil, fmt.Errorf("restore: no part of snapshot %s of set %s opens with this identity: %w", refs[0].ID, o.Set, seal.ErrWrongIdentity)
	}
	rs.res.Seconds = time.Since(start).Seconds()
	return rs.res, nil
}

// prepareTarget makes the target, refusing a non-empty one without force.
func prepareTarget(target string, force bool) error {
	if target == "" {
		return errors.New("restore: no --target")
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return fmt.Errorf("restore target: %w", err)
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		return fmt.Errorf("restore target: %w", err)
	}
	if len(entries) > 0 && !force {
		return fmt.Errorf("restore target %s is not empty (%d entries): restore into an empty directory, or pass --force to replace what lies at the snapshot's paths", target, len(entries))
	}
	return nil
}

// selection turns the PATH arguments into snapshot paths.
func selection(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == "" || strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("path %q: empty or with a NUL byte", p)
		}
		c := strings.TrimPrefix(path.Clean("/"+p), "/")
		out = append(out, c)
	}
	return out, nil
}

// selected says whether the node at p is restored: under a chosen path,
// or a directory above one.
func (rs *restorer) selected(p string, dir bool) bool {
	if len(rs.sel) == 0 {
		return true
	}
	for _, s := range rs.sel {
		if s == "" || p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
		if dir && (p == "" || strings.HasPrefix(s, p+"/")) {
			return true
		}
	}
	return false
}

// target is where a node is restored, relative to the target.
func target(n Node) string {
	if n.Item != "" {
		return "@" + n.Item + "/" + string(n.Path)
	}
	if n.Path == "" {
		return "."
	}
	return string(n.Path)
}

func selPath(n Node) string {
	if n.Item != "" {
		return "@" + n.Item + "/" + string(n.Path)
	}
	return string(n.Path)
}

// staged says whether a node's content is fetched into a staged file.
func staged(n Node) bool { return n.Type == TypeFile && n.HardLink == nil }

func (rs *restorer) restoreDomain(ref SnapshotRef) error {
	o := rs.o
	d, err := openDomainAfterSnapshot(rs.ctx, o, ref)
	if err != nil {
		return err
	}
	// Pass 1: directories, and each file staged at its size, its chunks
	// noted by pack.
	byPack := map[string]map[string][]chunkRef{} // pack → chunk id → places
	var fileNo int64
	var keyID string
	_, err = ReadSnapshot(rs.ctx, o.Backend, o.Opener, ref.Key, func(h SnapshotHeader, n Node) error {
		keyID = h.KeyID
		if !rs.selected(selPath(n), n.Type == TypeDir) {
			return nil
		}
		if n.Type == TypeDir {
			if n.Path != "" {
				return rs.root.MkdirAll(target(n), 0o700)
			}
			return nil
		}
		if !staged(n) {
			return nil
		}
		fileNo++
		f, err := rs.root.OpenFile(rs.stagedName(ref.Domain, fileNo), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		err = f.Truncate(n.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		return forEachChunk(n, func(id string, off int64) error {
			p, ok := d.places[id]
			if !ok || p.keyID != h.KeyID {
				return fmt.Errorf("%s: names chunk %s that no index of domain %s holds: run pgward files check", shortName(n.Path), shortID(id), ref.Domain)
			}
			if byPack[p.Pack] == nil {
				byPack[p.Pack] = map[string][]chunkRef{}
			}
			byPack[p.Pack][id] = append(byPack[p.Pack][id], chunkRef{file: fileNo, off: off})
			return nil
		}, d.places)
	})
	if err != nil {
		return err
	}
	secret, ok := d.keys[keyID]
	if !ok {
		return fmt.Errorf("snapshot %s: domain %s holds no key %s to check its chunks", ref.Key, ref.Domain, keyID)
	}
	if err := rs.fetch(ref.Domain, d, secret.Secret, byPack); err != nil {
		return err
	}
	// Pass 2: files into place, links, special files, then metadata, and
	// directories' metadata last (deepest first), once nothing more is
	// written into them.
	var dirs []Node
	fileNo = 0
	_, err = ReadSnapshot(rs.ctx, o.Backend, o.Opener, ref.Key, func(h SnapshotHeader, n Node) error {
		if !rs.selected(selPath(n), n.Type == TypeDir) {
			return nil
		}
		rs.res.Entries++
		if n.Type == TypeDir {
			if n.Path != "" {
				dirs = append(dirs, n)
			}
			return nil
		}
		if staged(n) {
			fileNo++
			rs.res.Files++
		}
		return rs.place(ref.Domain, n, fileNo)
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		rs.meta(dirs[i])
	}
	return nil
}

// openDomainAfterSnapshot opens the snapshot's header first, so a domain
// sealed to other recipients is told apart (ErrWrongIdentity) from one
// that is damaged.
func openDomainAfterSnapshot(ctx context.Context, o RestoreOptions, ref SnapshotRef) (*domainReader, error) {
	errHeader := errors.New("header read")
	_, err := ReadSnapshot(ctx, o.Backend, o.Opener, ref.Key, func(SnapshotHeader, Node) error { return errHeader })
	if err != nil && !errors.Is(err, errHeader) {
		return nil, err
	}
	return openDomain(ctx, o.Backend, o.Opener, ref.Domain)
}

func (rs *restorer) stagedName(domain string, n int64) string {
	return rs.staging + "/" + domain + "." + strconv.FormatInt(n, 10)
}

// forEachChunk calls fn with each chunk of a file and its offset: chunks
// fill the data extents (the whole file when it has no holes) in order.
func forEachChunk(n Node, fn func(id string, off int64) error, places map[string]chunkPlace) error {
	extents := n.Data
	if extents == nil && n.Size > 0 {
		extents = [][2]int64{{0, n.Size}}
	}
	ei, off, left := 0, int64(0), int64(0)
	if len(extents) > 0 {
		off, left = extents[0][0], extents[0][1]
	}
	for _, id := range n.Chunks {
		for left == 0 && ei+1 < len(extents) {
			ei++
			off, left = extents[ei][0], extents[ei][1]
		}
		p, ok := places[id]
		if ok && p.Length > left {
			return fmt.Errorf("%s: its chunks do not fit its size", shortName(n.Path))
		}
		if err := fn(id, off); err != nil {
			return err
		}
		off += p.Length
		left -= p.Length
	}
	if left != 0 || ei+1 < len(extents) {
		return fmt.Errorf("%s: its chunks do not fill its size", shortName(n.Path))
	}
	return nil
}

// fetch reads each pack once and writes its chunks where they go.
func (rs *restorer) fetch(domain string, d *domainReader, s Secret, byPack map[string]map[string][]chunkRef) error {
	packs := make([]string, 0, len(byPack))
	for p := range byPack {
		packs = append(packs, p)
	}
	sort.Strings(packs)
	var buf []byte
	for _, pack := range packs {
		chunks := byPack[pack]
		entries := make([]PackEntry, 0, len(chunks))
		for id := range chunks {
			p := d.places[id]
			entries = append(entries, PackEntry{ID: id, Offset: p.Offset, Length: p.Length})
		}
		sort.Slice(entries, func(i, j int) bool { return entries[i].Offset < entries[j].Offset })
		key := PackObjectKey(domain, pack)
		err := func() error {
			rc, _, err := rs.o.Backend.Get(rs.ctx, key)
			if err != nil {
				return err
			}
			defer rc.Close()
			r, err := rs.o.Opener.NewReader(rc, seal.Expect{Key: key, Kind: KindPack, Size: -1})
			if err != nil {
				return err
			}
			defer r.Close()
			if buf == nil {
				buf = make([]byte, 0, 8<<20)
			}
			err = ReadChunks(r, entries, s, buf, func(e PackEntry, data []byte) error {
				for _, ref := range chunks[e.ID] {
					if err := rs.writeAt(domain, ref, data); err != nil {
						return err
					}
				}
				rs.res.Bytes += int64(len(data)) * int64(len(chunks[e.ID]))
				if rs.o.Progress != nil {
					rs.o.Progress(int64(len(data)))
				}
				return nil
			})
			if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			return r.Close()
		}()
		if err != nil {
			return fmt.Errorf("pack %s: %w", key, err)
		}
	}
	return nil
}

func (rs *restorer) writeAt(domain string, ref chunkRef, data []byte) error {
	f, err := rs.root.OpenFile(rs.stagedName(domain, ref.file), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, ref.off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// place puts one node at its path: a staged file renamed there, a link, a
// symlink or a special file; then its owner, mode, xattrs and times.
func (rs *restorer) place(domain string, n Node, fileNo int64) error {
	p := target(n)
	if dir := path.Dir(p); dir != "." {
		if err := rs.root.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if rs.o.Force {
		if fi, err := rs.root.Lstat(p); err == nil && (!staged(n) || fi.IsDir()) {
			if err := rs.root.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	var err error
	switch {
	case staged(n):
		err = rs.root.Rename(rs.stagedName(domain, fileNo), p)
	case n.Type == TypeFile: // a hard link
		err = rs.root.Link(string(*n.HardLink), p)
		if err != nil && !rs.selected(string(*n.HardLink), false) {
			rs.warn(p, fmt.Errorf("its first link %q was not restored (outside the paths chosen)", shortName(*n.HardLink)))
			return nil
		}
	case n.Type == TypeSymlink:
		err = rs.root.Symlink(string(*n.Target), p)
	case n.Type == TypeFIFO, n.Type == TypeChar, n.Type == TypeBlock:
		err = rs.mknod(p, n)
	default:
		rs.warn(p, fmt.Errorf("a %s is not restored", n.Type))
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore %s: %w", shortName(n.Path), err)
	}
	if n.HardLink == nil {
		rs.meta(n)
	}
	if n.Item == ItemCrontab && rs.o.InstallCrontabs {
		rs.installCrontab(n, p)
	}
	return nil
}

func (rs *restorer) mknod(p string, n Node) error {
	if n.Type != TypeFIFO && os.Geteuid() != 0 {
		rs.warn(p, fmt.Errorf("a %s device is restored only as root", n.Type))
		return nil
	}
	parent, err := rs.root.Open(path.Dir(p))
	if err != nil {
		return err
	}
	defer parent.Close()
	mode := uint32(unix.S_IFIFO)
	switch n.Type {
	case TypeChar:
		mode = unix.S_IFCHR
	case TypeBlock:
		mode = unix.S_IFBLK
	}
	return unix.Mknodat(int(parent.Fd()), path.Base(p), mode|0o600, int(n.Rdev))
}

func (rs *restorer) warn(p string, err error) {
	rs.res.Warnings++
	rs.o.Log.Warn("restore", "path", p, "err", err)
}

// meta sets owner (as root), mode, xattrs and times; what fails is
// warned about (a file system without xattrs, an owner this host lacks).
func (rs *restorer) meta(n Node) {
	p := target(n)
	if os.Geteuid() == 0 {
		uid, gid := rs.owner(n)
		if err := rs.root.Lchown(p, uid, gid); err != nil {
			rs.warn(p, err)
		}
	}
	if n.Type == TypeSymlink {
		return // Linux keeps no mode, and os.Root sets no times, on a symlink
	}
	mode := os.FileMode(n.Mode & 0o777)
	if n.Mode&0o4000 != 0 {
		mode |= os.ModeSetuid
	}
	if n.Mode&0o2000 != 0 {
		mode |= os.ModeSetgid
	}
	if n.Mode&0o1000 != 0 {
		mode |= os.ModeSticky
	}
	if err := rs.root.Chmod(p, mode); err != nil {
		rs.warn(p, err)
	}
	if len(n.Xattrs) > 0 && n.Type != TypeFIFO {
		if f, err := rs.root.Open(p); err == nil {
			for k, v := range n.Xattrs {
				if err := unix.Fsetxattr(int(f.Fd()), k, v, 0); err != nil {
					rs.warn(p, fmt.Errorf("xattr %s: %w", k, err))
				}
			}
			f.Close()
		}
	}
	mt := time.Unix(0, n.MTime)
	if err := rs.root.Chtimes(p, mt, mt); err != nil {
		rs.warn(p, err)
	}
}

// owner is the node's owner on this host: its user and group names when
// they exist here, else the stored ids.
func (rs *restorer) owner(n Node) (int, int) {
	uid, gid := int(n.UID), int(n.GID)
	if n.User != "" {
		if v, ok := rs.uids[n.User]; ok {
			uid = v
		} else if u, err := user.Lookup(n.User); err == nil {
			if v, err := strconv.Atoi(u.Uid); err == nil {
				rs.uids[n.User], uid = v, v
			}
		}
	}
	if n.Group != "" {
		if v, ok := rs.gids[n.Group]; ok {
			gid = v
		} else if g, err := user.LookupGroup(n.Group); err == nil {
			if v, err := strconv.Atoi(g.Gid); err == nil {
				rs.gids[n.Group], gid = v, v
			}
		}
	}
	return uid, gid
}

func (rs *restorer) installCrontab(n Node, p string) {
	cmd := exec.CommandContext(rs.ctx, "crontab", "-u", string(n.Path), filepath.Join(rs.o.Target, p))
	if out, err := cmd.CombinedOutput(); err != nil {
		rs.warn(p, fmt.Errorf("crontab -u %s: %v: %s", n.Path, err, strings.TrimSpace(string(out))))
		return
	}
	rs.o.Log.Info("crontab installed", "user", string(n.Path))
}
