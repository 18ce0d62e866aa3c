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
