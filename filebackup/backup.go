package filebackup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// Route says whom the part of a set below Prefix is sealed to ("" for the
// rest of the set): one key domain per route.
type Route struct {
	Prefix     string
	Recipients []string // age1…
}

// Command is a --from-command item: its standard output is stored as the
// item Name.
type Command struct {
	Name    string
	Command string // run with sh -c
}

// BackupOptions describe one run of `files backup`.
type BackupOptions struct {
	Backend storage.Backend
	Signer  *seal.SigningKey
	Trust   seal.Trust
	Set     string
	Host    string
	Paths   []string // absolute
	Walk    WalkOptions
	Routes  []Route
	// StateDir keeps this host's secrets (one file per domain, 0600).
	StateDir string
	// Crontabs stores every user's crontab from CrontabSpool; CrontabDump
	// also writes each to ~USER/.crontab-dump first.
	Crontabs     bool
	CrontabSpool string
	CrontabDump  bool
	Commands     []Command
	// CommandTimeout bounds each command (default 10 minutes).
	CommandTimeout time.Duration
	Now            func() time.Time
	Log            *slog.Logger
	// Progress, when set, is told of bytes read from disk.
	Progress func(n int64)
}

// The results of a run.
const (
	StatusOK      = "ok"
	StatusPartial = "partial" // some entries could not be read: warned about and left out
	StatusFailed  = "failed"
)

// BackupResult is what a run did.
type BackupResult struct {
	Set         string   `json:"set"`
	ID          string   `json:"id"`
	Status      string   `json:"status"`
	Snapshots   []string `json:"snapshots"`
	Domains     []string `json:"domains"`
	Entries     int64    `json:"entries"`
	Files       int64    `json:"files"`
	BytesRead   int64    `json:"bytes_read"`   // read from disk this run
	BytesReused int64    `json:"bytes_reused"` // of unchanged files, not read again
	BytesNew    int64    `json:"bytes_new"`    // plaintext of chunks the domains did not hold
	StoredBytes int64    `json:"stored_bytes"` // sealed bytes of new packs
	Warnings    int      `json:"warnings"`
	Changed     []string `json:"changed,omitempty"` // files that changed while read (first 100)
	Skipped     []string `json:"skipped,omitempty"` // entries not read (first 100)
	FailedItems []string `json:"failed_items,omitempty"`
	Seconds     float64  `json:"seconds"`
}

// run is one domain's part of a backup.
type run struct {
	name     string
	prefix   string
	secret   Secret
	splitter *Splitter
	store    *Store
	meta     *seal.Sealer // recipients + the secret's reader
	spool    *os.File
	spoolBuf *bufio.Writer
	enc      *json.Encoder
	parent   *cursor
	nodes    int64
	release  func()
}

// Backup stores one snapshot of a set: a snapshot object per key domain,
// all with the same id. Only chunks a domain does not hold are stored;
// files unchanged since the parent snapshot are not read again.
func Backup(ctx context.Context, o BackupOptions) (*BackupResult, error) {
	start := time.Now()
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 10 * time.Minute
	}
	if err := ValidateSet(o.Set); err != nil {
		return nil, err
	}
	paths, err := cleanPaths(o.Paths)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 && !o.Crontabs && len(o.Commands) == 0 {
		return nil, errors.New("nothing to back up: name a PATH, --crontabs or --from-command")
	}
	for _, c := range o.Commands {
		if err := ValidateItemName(c.Name); err != nil {
			return nil, fmt.Errorf("--from-command: %w", err)
		}
	}
	routes := append([]Route(nil), o.Routes...)
	sort.Slice(routes, func(i, j int) bool { return len(routes[i].Prefix) > len(routes[j].Prefix) }) // longest first
	if len(routes) == 0 || routes[len(routes)-1].Prefix != "" {
		return nil, errors.New("file backup: no recipients for the set (a route for the rest of it)")
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	id := SnapshotID(o.Now())
	res := &BackupResult{Set: o.Set, ID: id, Status: StatusOK}
	b := &backup{o: o, ctx: ctx, res: res, runs: map[string]*run{}, routes: routes, id: id, seen: map[string]bool{}}
	defer b.cleanup()
	for _, rt := range routes {
		if _, err := b.runFor(rt, cancel); err != nil {
			return nil, err
		}
	}

	if o.CrontabDump {
		b.writeCrontabDumps()
	}
	for _, p := range paths {
		if err := b.backupPath(p); err != nil {
			return nil, err
		}
	}
	if o.Crontabs {
		if err := b.backupCrontabs(); err != nil {
			return nil, err
		}
	}
	for _, c := range o.Commands {
		if err := b.backupCommand(c); err != nil {
			return nil, err
		}
	}
	if err := b.finish(); err != nil {
		return nil, err
	}
	res.Seconds = time.Since(start).Seconds()
	if len(res.FailedItems) > 0 {
		res.Status = StatusFailed
	} else if len(res.Skipped) > 0 || res.Warnings > 0 {
		res.Status = StatusPartial
	}
	return res, nil
}

type backup struct {
	o      BackupOptions
	ctx    context.Context
	res    *BackupResult
	routes []Route
	runs   map[string]*run // by route prefix
	order  []*run
	id     string
	open   *Store          // the one store with a pack upload in flight
	seen   map[string]bool // directories above the paths, recorded
}

// runFor opens the domain of route rt: its secret, lock, known chunks,
// parent snapshot and snapshot spool.
func (b *backup) runFor(rt Route, cancel context.CancelCauseFunc) (*run, error) {
	o := b.o
	recips, err := parseRecipients(rt.Recipients)
	if err != nil {
		return nil, err
	}
	if len(recips) == 0 {
		return nil, errors.New("file backup: a route without recipients (files are always encrypted)")
	}
	name := DomainName(o.Host, rt.Recipients)
	for _, r := range b.order {
		if r.name == name { // another prefix with the same recipients: one domain, one lock
			b.runs[rt.Prefix] = r
			return r, nil
		}
	}
	packSealer := seal.NewSealer(recips, seal.LevelFastest, 0).SignWith(o.Signer)
	secret, err := hostSecret(b.ctx, o.Backend, packSealer, o.StateDir, name, rt.Recipients, o.Log)
	if err != nil {
		return nil, err
	}
	reader := secret.Reader()
	meta := seal.NewSealer(append(append([]age.Recipient(nil), recips...), reader), seal.LevelFastest, 0).SignWith(o.Signer)
	release, err := basebackup.LockKey(b.ctx, o.Backend, LockKey(name), "files backup "+o.Set, time.Now, o.Log, func(err error) { cancel(err) })
	if err != nil {
		return nil, fmt.Errorf("files domain %s: %w", name, err)
	}
	r := &run{name: name, prefix: rt.Prefix, secret: secret, meta: meta, release: release}
	b.runs[rt.Prefix] = r
	b.order = append(b.order, r)
	if r.splitter, err = secret.NewSplitter(); err != nil {
		return nil, err
	}
	opener := seal.NewOpener([]age.Identity{reader}).SetTrust(o.Trust)
	known := map[string]bool{}
	if err := EachIndex(b.ctx, o.Backend, opener, name, secret.KeyID(), func(_ string, e IndexEntry) error {
		known[e.ID] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("files domain %s: read what it holds: %w", name, err)
	}
	r.store = &Store{Backend: o.Backend, Domain: name, Sealer: packSealer, IndexSealer: meta, KeyID: secret.KeyID(), Known: known}
	r.parent = b.parentOf(name, opener, known)
	if r.spool, err = os.CreateTemp(o.StateDir, ".snapshot-*"); err != nil {
		return nil, fmt.Errorf("snapshot spool: %w", err)
	}
	os.Remove(r.spool.Name()) // unnamed: nothing left behind by a crash
	r.spoolBuf = bufio.NewWriterSize(r.spool, 256<<10)
	r.enc = json.NewEncoder(r.spoolBuf)
	return r, nil
}

// LockKey is the lease lock of a domain, shared by its backups and prune.
func LockKey(domain string) string { return Prefix(domain) + "lock.json" }

// parentOf finds the newest snapshot of the set in domain that this
// host's secret opens: what unchanged files are taken from.
func (b *backup) parentOf(domain string, opener *seal.Opener, known map[string]bool) *cursor {
	keys, err := ListSnapshots(b.ctx, b.o.Backend, domain, b.o.Set)
	if err != nil || len(keys) == 0 {
		return nil
	}
	key := keys[len(keys)-1]
	c := newCursor(b.ctx, b.o.Backend, opener, key, known)
	b.o.Log.Debug("parent snapshot", "domain", domain, "key", key)
	return c
}

func (b *backup) cleanup() {
	for _, r := range b.order {
		if r.parent != nil {
			r.parent.stop()
		}
		if r.spool != nil {
			r.spool.Close()
		}
		r.release()
	}
}

// route returns the domain of an absolute path.
func (b *backup) route(full string) *run {
	for _, rt := range b.routes {
		if rt.Prefix == "" || full == rt.Prefix || strings.HasPrefix(full, rt.Prefix+"/") {
			return b.runs[rt.Prefix]
		}
	}
	return b.runs[""]
}

// cleanPaths makes the set's paths absolute and clean, sorted in walk
// order, without one that lies inside another.
func cleanPaths(in []string) ([]string, error) {
	var out []string
	for _, p := range in {
		if p == "" || strings.ContainsRune(p, 0) {
			return nil, fmt.Errorf("path %q: empty or with a NUL byte", p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, err
		}
		out = append(out, abs)
	}
	sort.Slice(out, func(i, j int) bool { return walkLess(out[i], out[j]) })
	var kept []string
	for _, p := range out {
		if n := len(kept); n > 0 && (kept[n-1] == p || kept[n-1] == "/" || strings.HasPrefix(p, kept[n-1]+"/")) {
			continue
		}
		kept = append(kept, p)
	}
	return kept, nil
}

// walkLess orders paths as a walk visits them: segment by segment, a
// directory before what it holds.
func walkLess(a, b string) bool {
	for {
		as, arest, amore := strings.Cut(a, "/")
		bs, brest, bmore := strings.Cut(b, "/")
		if as != bs {
			return as < bs
		}
		if !amore || !bmore {
			return !amore && bmore
		}
		a, b = arest, brest
	}
}

// rel is an absolute path as a snapshot names it.
func rel(full string) string { return strings.TrimPrefix(full, "/") }

// backupPath walks one of the set's paths, with the directories above it.
func (b *backup) backupPath(root string) error {
	o := b.o
	// The directories above root, each once, so a restore recreates them
	// with their modes and owners.
	if root != "/" {
		dir := "/"
		for _, seg := range strings.Split(rel(path.Dir(root)), "/") {
			if seg == "" {
				continue
			}
			dir = path.Join(dir, seg)
			if err := b.ancestor(dir); err != nil {
				return err
			}
		}
	}
	opts := o.Walk
	opts.Warn = func(p string, err error) { b.skip(p, err) }
	prefix := rel(root)
	return Walk(root, opts, func(full string, n Node) error {
		if err := b.ctx.Err(); err != nil {
			return context.Cause(b.ctx)
		}
		n.Path = Name(path.Join(prefix, string(n.Path)))
		if n.HardLink != nil {
			hl := Name(path.Join(prefix, string(*n.HardLink)))
			n.HardLink = &hl
		}
		return b.add(full, n)
	})
}

func (b *backup) ancestor(dir string) error {
	if b.seen[dir] {
		return nil
	}
	b.seen[dir] = true
	n, err := StatNode(dir)
	if err != nil {
		b.skip(dir, err)
		return nil
	}
	n.Path = Name(rel(dir))
	return b.route(dir).write(b, n)
}

func (r *run) write(b *backup, n Node) error {
	if err := r.enc.Encode(n); err != nil {
		return fmt.Errorf("snapshot spool: %w", err)
	}
	r.nodes++
	b.res.Entries++
	return nil
}

func (b *backup) skip(p string, err error) {
	b.res.Warnings++
	if len(b.res.Skipped) < 100 {
		b.res.Skipped = append(b.res.Skipped, p)
	}
	b.o.Log.Warn("not backed up", "path", p, "err", err)
}

// add records one entry of the tree, reading its content unless the
// parent snapshot has it unchanged.
func (b *backup) add(full string, n Node) error {
	r := b.route(full)
	if n.HardLink != nil && b.route("/"+string(*n.HardLink)) != r {
		n.HardLink = nil // its first path is another customer's: store the content here too
	}
	if n.Type != TypeFile || n.HardLink != nil {
		return r.write(b, n)
	}
	b.res.Files++
	if p := r.parent.find(string(n.Path)); p != nil && unchanged(p, &n, r.store.Known) {
		n.Chunks, n.Data = p.Chunks, p.Data
		b.res.BytesReused += n.Size
		return r.write(b, n)
	}
	before := r.store.Written
	if err := b.switchTo(r); err != nil {
		return err
	}
	err := r.splitter.ReadContent(full, r.secret, &n, func(id string, data []byte) error {
		if b.o.Progress != nil {
			b.o.Progress(int64(len(data)))
		}
		b.res.BytesRead += int64(len(data))
		if err := r.store.Add(b.ctx, id, data); err != nil {
			return storeError{err}
		}
		return nil
	})
	b.res.BytesNew += r.store.Written - before
	if err != nil {
		if b.ctx.Err() != nil || isStoreError(err) {
			return err
		}
		b.skip(full, err)
		return nil
	}
	if n.Changed {
		b.res.Warnings++
		if len(b.res.Changed) < 100 {
			b.res.Changed = append(b.res.Changed, full)
		}
		b.o.Log.Warn("file changed while it was read: stored as read", "path", full)
	}
	return r.write(b, n)
}

// storeError marks a failure to store (the repository), which ends the
// run, from a failure to read one file, which skips it.
type storeError struct{ err error }

func (e storeError) Error() string { return e.err.Error() }
func (e storeError) Unwrap() error { return e.err }

func isStoreError(err error) bool {
	var se storeError
	return errors.As(err, &se)
}

// switchTo closes another domain's open pack before r may open one.
func (b *backup) switchTo(r *run) error {
	if b.open != nil && b.open != r.store {
		if err := b.open.ClosePack(); err != nil {
			return storeError{err}
		}
	}
	b.open = r.store
	return nil
}

// unchanged says the file's parent entry may stand for it: same size,
// times and inode, read whole then, and every chunk still held.
func unchanged(p, n *Node, known map[string]bool) bool {
	if p.Type != TypeFile || p.HardLink != nil || p.Changed || p.Size != n.Size || p.MTime != n.MTime || p.CTime != n.CTime || p.Inode != n.Inode || p.Dev != n.Dev {
		return false
	}
	for _, id := range p.Chunks {
		if !known[id] {
			return false
		}
	}
	return true
}

// finish stores every domain's packs and index, then its snapshot: a
// snapshot never names a chunk not yet stored.
func (b *backup) finish() error {
	for _, r := range b.order {
		if _, err := r.store.Flush(b.ctx); err != nil {
			return fmt.Errorf("files domain %s: %w", r.name, err)
		}
		b.res.StoredBytes += r.store.Stored
	}
	for _, r := range b.order {
		if r.parent != nil {
			r.parent.stop()
			r.parent = nil
		}
		if r.nodes == 0 {
			continue // nothing of the set lies in this domain
		}
		if err := r.spoolBuf.Flush(); err != nil {
			return fmt.Errorf("snapshot spool: %w", err)
		}
		if _, err := r.spool.Seek(0, io.SeekStart); err != nil {
			return err
		}
		t, _ := time.Parse("20060102T150405Z", b.id) // SnapshotID made it
		h := SnapshotHeader{ID: b.id, Set: b.o.Set, Domain: r.name, Time: t, Host: b.o.Host, KeyID: r.secret.KeyID()}
		for _, p := range b.o.Paths {
			h.Paths = append(h.Paths, Name(p))
		}
		w, err := NewSnapshotWriter(b.ctx, b.o.Backend, r.meta, h)
		if err != nil {
			return err
		}
		if err := w.copyNodes(r.spool); err != nil {
			w.Abort(err)
			return err
		}
		key, err := w.Close()
		if err != nil {
			return fmt.Errorf("store snapshot: %w", err)
		}
		b.res.Snapshots = append(b.res.Snapshots, key)
		b.res.Domains = append(b.res.Domains, r.name)
	}
	return nil
}

// cursor walks a parent snapshot alongside the backup's walk, both in
// walk order, so finding a file's parent entry holds one node in memory.
type cursor struct {
	next  func() (Node, bool)
	stopF func()
	cur   *Node
	done  bool
}

func newCursor(ctx context.Context, b storage.Backend, o *seal.Opener, key string, known map[string]bool) *cursor {
	seq := iter.Seq[Node](func(yield func(Node) bool) {
		errStop := errors.New("stop")
		_, _ = ReadSnapshot(ctx, b, o, key, func(_ SnapshotHeader, n Node) error {
			if n.Item != "" {
				return nil
			}
			if !yield(n) {
				return errStop
			}
			return nil
		})
	})
	next, stop := iter.Pull(seq)
	return &cursor{next: next, stopF: stop}
}

// find returns the parent's entry for p, if it has one; p must not come
// before an earlier call's in walk order. A parent that fails to read
// (cut short, another secret) simply ends: its files are read again.
func (c *cursor) find(p string) *Node {
	if c == nil {
		return nil
	}
	for !c.done {
		if c.cur == nil {
			n, ok := c.next()
			if !ok {
				c.done = true
				return nil
			}
			c.cur = &n
		}
		cp := string(c.cur.Path)
		switch {
		case cp == p:
			return c.cur
		case walkLess("/"+cp, "/"+p):
			c.cur = nil
		default:
			return nil
		}
	}
	return nil
}

func (c *cursor) stop() {
	if c != nil {
		c.stopF()
	}
}
