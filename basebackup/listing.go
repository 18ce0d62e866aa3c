package basebackup

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// Listed is a finished backup as the repository holds it.
type Listed struct {
	catalog.BackupInfo
	Pinned bool `json:"pinned"`
}

// RefusedError is a backup List skipped: its backup.json could not be
// read, or was refused (damaged, forged, or signed by a key not trusted).
type RefusedError struct {
	ID  string
	Err error
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// ErrNoBackup is returned (wrapped) for an id with no finished backup.
var ErrNoBackup = errors.New("no such finished backup")

// List returns the cluster's finished backups (those with a backup.json),
// oldest first. A backup.json that cannot be read, or whose signature
// trust refuses, is skipped and its error returned in skipped, so one
// damaged backup does not hide the rest. A nil trust checks nothing.
func List(ctx context.Context, store storage.Backend, layout catalog.Layout, trust *seal.Trust) (backups []Listed, skipped []error, err error) {
	prefix := layout.BackupsPrefix()
	var ids []string
	pinned := map[string]bool{}
	err = store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, prefix)
		id, file, ok := strings.Cut(rest, "/")
		switch {
		case !ok:
		case file == "backup.json":
			ids = append(ids, id)
		case file == "pinned":
			pinned[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list backups: %w", err)
	}
	for _, id := range ids {
		info, err := readInfo(ctx, store, layout, id, trust)
		if err != nil {
			skipped = append(skipped, &RefusedError{ID: id, Err: err})
			continue
		}
		backups = append(backups, Listed{BackupInfo: info, Pinned: pinned[id]})
	}
	sort.Slice(backups, func(i, j int) bool { return backups[i].StartTime.Before(backups[j].StartTime) })
	return backups, skipped, nil
}

// Get returns one finished backup, its backup.json checked by trust (nil:
// not checked).
func Get(ctx context.Context, store storage.Backend, layout catalog.Layout, id string, trust *seal.Trust) (Listed, error) {
	if err := ValidateID(id); err != nil {
		return Listed{}, err
	}
	info, err := readInfo(ctx, store, layout, id, trust)
	if err != nil {
		return Listed{}, err
	}
	_, err = store.Stat(ctx, layout.BackupPinKey(id))
	if err != nil && !errors.Is(err, storage.ErrNotExist) {
		return Listed{}, err
	}
	return Listed{BackupInfo: info, Pinned: err == nil}, nil
}

func readInfo(ctx context.Context, store storage.Backend, layout catalog.Layout, id string, trust *seal.Trust) (catalog.BackupInfo, error) {
	key := layout.BackupInfoKey(id)
	rc, _, err := store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return catalog.BackupInfo{}, fmt.Errorf("backup %q: %w", id, ErrNoBackup)
	}
	if err != nil {
		return catalog.BackupInfo{}, fmt.Errorf("read backup %s: %w", id, err)
	}
	defer rc.Close()
	data, err := seal.ReadAll(rc, 16<<20)
	if err != nil {
		return catalog.BackupInfo{}, fmt.Errorf("read backup %s: %w", id, err)
	}
	trusted := false
	if trust != nil {
		if data, trusted, err = trust.VerifyDocumentTrusted(data, key); err != nil {
			return catalog.BackupInfo{}, fmt.Errorf("backup %s: %w", id, err)
		}
	}
	info, err := catalog.ParseBackupInfo(data, layout, id)
	if err != nil {
		return catalog.BackupInfo{}, fmt.Errorf("backup %s: %w", id, err)
	}
	info.Trusted = trusted
	return info, nil
}

// ValidateID checks a backup id given by a user.
func ValidateID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." || len(id) > 64 {
		return fmt.Errorf("invalid backup id %q (see 'pgward backup list')", id)
	}
	return nil
}

// Pin marks a backup as kept by retention; Unpin removes the mark.
func Pin(ctx context.Context, store storage.Backend, layout catalog.Layout, id string, pin bool) error {
	if _, err := Get(ctx, store, layout, id, nil); err != nil {
		return err
	}
	if !pin {
		return store.Delete(ctx, layout.BackupPinKey(id))
	}
	return store.Put(ctx, layout.BackupPinKey(id), strings.NewReader(""), 0, nil)
}

// Delete removes a backup, finished or not: backup.json first, so it
// stops being a backup before its parts go. It reports whether anything
// was there.
func Delete(ctx context.Context, store storage.Backend, layout catalog.Layout, id string) (bool, error) {
	if err := ValidateID(id); err != nil {
		return false, err
	}
	// Never pull the parts from under a backup that is still being taken:
	// its backup.json would name objects that are gone.
	if held, err := readLock(ctx, store, layout.BackupLockKey()); err == nil && held.Backup == id && time.Now().Before(held.Expires) && !held.holderGone() {
		return false, fmt.Errorf("backup %s is being taken now (%s): %w", id, held.Holder, ErrLocked)
	}
	found := false
	if _, err := store.Stat(ctx, layout.BackupInfoKey(id)); err == nil {
		found = true
		if err := store.Delete(ctx, layout.BackupInfoKey(id)); err != nil {
			return true, err
		}
	}
	err := store.List(ctx, layout.BackupPrefix(id), func(oi storage.ObjectInfo) error {
		found = true
		return store.Delete(ctx, oi.Key)
	})
	return found, err
}

// The statuses of a backup in a listing.
const (
	StatusFinished = "finished" // backup.json is there and was accepted
	StatusRunning  = "running"  // the backup lock names it and its holder is alive
	StatusFailed   = "failed"   // parts without backup.json, and nothing is taking it
	StatusRefused  = "refused"  // backup.json is there but damaged, forged or untrusted
)

// Entry is one backup of a listing with its status. For a backup without
// an accepted backup.json only ID is set of Listed.
type Entry struct {
	Listed
	Status string `json:"status"`
	// Holder is who takes a running backup, and since when.
	Holder string    `json:"holder,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Error says why a backup.json was refused.
	Error string `json:"error,omitempty"`
	// PartsBytes and LastWrite describe what a running or failed backup
	// has stored so far.
	PartsBytes int64     `json:"parts_bytes,omitempty"`
	LastWrite  time.Time `json:"last_write,omitzero"`
}

// ListAll returns every backup of the cluster with its status, oldest
// first: finished ones as List reads them, refused ones with the reason,
// the one the backup lock names as running while its holder is alive, and
// the rest, parts without backup.json, as failed.
func ListAll(ctx context.Context, store storage.Backend, layout catalog.Layout, trust *seal.Trust, now time.Time) ([]Entry, error) {
	finished, skipped, err := List(ctx, store, layout, trust)
	if err != nil {
		return nil, err
	}
	var out []Entry
	known := map[string]bool{}
	for _, b := range finished {
		out = append(out, Entry{Listed: b, Status: StatusFinished})
		known[b.ID] = true
	}
	for _, e := range skipped {
		var r *RefusedError
		if errors.As(e, &r) {
			out = append(out, Entry{Listed: Listed{BackupInfo: catalog.BackupInfo{ID: r.ID}}, Status: StatusRefused, Error: r.Err.Error()})
			known[r.ID] = true
		}
	}
	running := ""
	held, err := readLock(ctx, store, layout.BackupLockKey())
	if err == nil && now.Before(held.Expires) && !held.holderGone() {
		running = held.Backup
	}
	prefix := layout.BackupsPrefix()
	partial := map[string]*Entry{}
	var order []string
	err = store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		id, _, ok := strings.Cut(strings.TrimPrefix(oi.Key, prefix), "/")
		if !ok || known[id] {
			return nil
		}
		e := partial[id]
		if e == nil {
			e = &Entry{Listed: Listed{BackupInfo: catalog.BackupInfo{ID: id}}, Status: StatusFailed}
			partial[id] = e
			order = append(order, id)
		}
		e.PartsBytes += oi.Size
		if oi.ModTime.After(e.LastWrite) {
			e.LastWrite = oi.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list backups: %w", err)
	}
	if running != "" && partial[running] == nil && !known[running] {
		// Started, nothing stored yet.
		partial[running] = &Entry{Listed: Listed{BackupInfo: catalog.BackupInfo{ID: running}}}
		order = append(order, running)
	}
	for _, id := range order {
		e := partial[id]
		if id == running {
			e.Status, e.Holder, e.Since = StatusRunning, held.Holder, held.Since
			e.StartTime = held.Since
		}
		out = append(out, *e)
	}
	sort.SliceStable(out, func(i, j int) bool { return entryTime(out[i]).Before(entryTime(out[j])) })
	return out, nil
}

// entryTime orders a listing: a backup's start, or what is known of it.
func entryTime(e Entry) time.Time {
	if !e.StartTime.IsZero() {
		return e.StartTime
	}
	if t, err := time.Parse("20060102T150405Z", e.ID); err == nil {
		return t // an id is its start
	}
	return e.LastWrite
}
