package basebackup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage"
)

// DefaultLease is how long a lock holds without renewal; a holder renews
// it at a third of that.
const DefaultLease = 5 * time.Minute

// ErrLocked is returned (wrapped) when another backup of the cluster runs.
var ErrLocked = errors.New("another base backup of this cluster is running")

type lockRecord struct {
	Host    string    `json:"host"`
	BootID  string    `json:"boot_id"`
	PIDNS   string    `json:"pid_namespace"`
	PID     int       `json:"pid"`
	Holder  string    `json:"holder"`
	Backup  string    `json:"backup_id"`
	Since   time.Time `json:"since"`
	Expires time.Time `json:"expires"`
}

// lock is a lease on the repository cluster's backup lock object.
type lock struct {
	store storage.Backend
	key   string
	mu    sync.Mutex // guards rec
	rec   lockRecord
	lease time.Duration
	log   *slog.Logger
	stop  chan struct{}
	done  chan struct{}
	// onLoss is called once if the lock is lost (taken over, or not
	// renewable before it expires).
	onLoss func(error)
	now    func() time.Time
}

// setBackup names the backup the lock is held for, in the lock object
// too, so that delete can tell which backup is in progress.
func (l *lock) setBackup(id string) error {
	l.mu.Lock()
	l.rec.Backup = id
	l.mu.Unlock()
	return l.renewOnce(l.now)
}

// acquireLock takes the lock, breaking one whose holder let its lease
// expire or is gone (with a warning), and keeps renewing it until
// release.
func acquireLock(ctx context.Context, store storage.Backend, key string, lease time.Duration, now func() time.Time, log *slog.Logger, onLoss func(error)) (*lock, error) {
	return acquireLockAs(ctx, store, key, lease, now, log, onLoss, ErrLocked)
}

// ErrHeld is returned (wrapped) by LockKey when another run holds the lock.
var ErrHeld = errors.New("another run holds this lock")

// acquireLockAs is acquireLock, answering busy when the lock is held.
func acquireLockAs(ctx context.Context, store storage.Backend, key string, lease time.Duration, now func() time.Time, log *slog.Logger, onLoss func(error), busy error) (*lock, error) {
	host, _ := os.Hostname()
	bootID, pidNS := processIdentity()
	l := &lock{store: store, key: key, lease: lease, log: log, onLoss: onLoss, now: now,
		rec: lockRecord{Host: host, BootID: bootID, PIDNS: pidNS, PID: os.Getpid(), Holder: fmt.Sprintf("%s pid %d", host, os.Getpid()), Since: now().UTC()}}
	for attempt := 0; attempt < 2; attempt++ {
		l.rec.Expires = now().UTC().Add(lease)
		b, _ := json.Marshal(l.rec)
		err := store.Create(ctx, l.key, bytes.NewReader(b), int64(len(b)), nil)
		if err == nil {
			l.stop, l.done = make(chan struct{}), make(chan struct{})
			go l.renew(now)
			return l, nil
		}
		if !errors.Is(err, storage.ErrExist) {
			return nil, fmt.Errorf("take the backup lock: %w", err)
		}
		held, err := readLock(ctx, store, l.key)
		if err != nil {
			return nil, err
		}
		if now().Before(held.Expires) && !held.holderGone() {
			task := held.Backup
			if busy == ErrLocked {
				task = "backup " + task
			}
			return nil, fmt.Errorf("%w: %s started %s at %s (lease until %s)", busy,
				held.Holder, task, held.Since.Format(time.RFC3339), held.Expires.Format(time.RFC3339))
		}
		log.Warn("breaking a backup lock whose holder is gone", "holder", held.Holder, "backup_id", held.Backup, "lease_until", held.Expires)
		if err := store.Delete(ctx, l.key); err != nil {
			return nil, fmt.Errorf("break the expired backup lock: %w", err)
		}
	}
	return nil, fmt.Errorf("%w: lost the race for an expired lock", busy)
}

func readLock(ctx context.Context, store storage.Backend, key string) (lockRecord, error) {
	rc, _, err := store.Get(ctx, key)
	if err != nil {
		return lockRecord{}, fmt.Errorf("read the backup lock: %w", err)
	}
	defer rc.Close()
	var rec lockRecord
	if err := json.NewDecoder(io.LimitReader(rc, 1<<16)).Decode(&rec); err != nil {
		return lockRecord{}, fmt.Errorf("read the backup lock: %w", err)
	}
	return rec, nil
}

func (l *lock) renew(now func() time.Time) {
	defer close(l.done)
	tick := time.NewTicker(l.lease / 10)
	defer tick.Stop()
	renewed := now()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		if now().Sub(renewed) < l.lease/3 {
			continue
		}
		err := l.renewOnce(now)
		if err == nil {
			renewed = now()
			continue
		}
		if errors.Is(err, errLockTaken) || now().Sub(renewed) > l.lease*2/3 {
			l.log.Error("backup lock lost; stopping the backup", "err", err)
			if l.onLoss != nil {
				l.onLoss(fmt.Errorf("%w: %v", ErrLocked, err))
			}
			return
		}
		l.log.Warn("could not renew the backup lock; retrying", "err", err)
	}
}

var errLockTaken = errors.New("the backup lock was taken over by another backup")

// renewOnce extends our lease, if the lock is still ours.
func (l *lock) renewOnce(now func() time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), l.lease/3)
	defer cancel()
	held, err := readLock(ctx, l.store, l.key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return errLockTaken
		}
		return err
	}
	l.mu.Lock()
	mine := held.Holder == l.rec.Holder && held.Since.Equal(l.rec.Since)
	l.rec.Expires = now().UTC().Add(l.lease)
	b, _ := json.Marshal(l.rec)
	l.mu.Unlock()
	if !mine {
		return errLockTaken
	}
	return l.store.Put(ctx, l.key, bytes.NewReader(b), int64(len(b)), nil)
}

// release stops renewing and removes the lock, if it is still ours.
func (l *lock) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	held, err := readLock(ctx, l.store, l.key)
	if err != nil || held.Holder != l.rec.Holder || !held.Since.Equal(l.rec.Since) {
		return nil // gone, or another backup's now
	}
	if err := l.store.Delete(ctx, l.key); err != nil {
		return fmt.Errorf("release the backup lock: %w", err)
	}
	return nil
}

// holderGone reports whether the holder was a process on this host that
// no longer runs (killed, crashed): its lease need not be waited out.
func (r lockRecord) holderGone() bool {
	host, _ := os.Hostname()
	boot, pidNS := processIdentity()
	// Only a process of this very kernel boot and PID namespace can be
	// looked up by its PID; anything else waits out the lease.
	if r.Host != host || r.BootID == "" || r.BootID != boot || r.PIDNS != pidNS || r.PID <= 0 {
		return false
	}
	return unix.Kill(r.PID, 0) == unix.ESRCH
}

// processIdentity names this kernel boot and PID namespace.
func processIdentity() (bootID, pidNS string) {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	ns, _ := os.Readlink("/proc/self/ns/pid")
	return strings.TrimSpace(string(b)), ns
}

// Lock takes the cluster's backup lock for other repository work (prune)
// and returns its release.
func Lock(ctx context.Context, store storage.Backend, layout catalog.Layout, now func() time.Time, log *slog.Logger) (func(), error) {
	return LockKey(ctx, store, layout.BackupLockKey(), "prune", now, log, nil)
}

// LockKey takes the lease lock at key for task (its name in the lock
// object) and returns its release; onLoss, when set, is called if the
// lock is lost while held. File backups and their prune share this lock.
func LockKey(ctx context.Context, store storage.Backend, key, task string, now func() time.Time, log *slog.Logger, onLoss func(error)) (func(), error) {
	busy := ErrHeld
	if task == "prune" {
		busy = ErrLocked // a cluster's prune waits on its base backups
	}
	l, err := acquireLockAs(ctx, store, key, DefaultLease, now, log, onLoss, busy)
	if err != nil {
		return nil, err
	}
	if err := l.setBackup(task); err != nil {
		l.release(context.WithoutCancel(ctx))
		return nil, err
	}
	return func() { l.release(context.WithoutCancel(ctx)) }, nil
}
