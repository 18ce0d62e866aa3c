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
	rec   lockRecord
	lease time.Duration
	log   *slog.Logger
	stop  chan struct{}
	done  chan struct{}
}

// acquireLock takes the lock, breaking one whose holder let its lease
// expire (with a warning), and keeps renewing it until release.
func acquireLock(ctx context.Context, store storage.Backend, layout catalog.Layout, backupID string, lease time.Duration, now func() time.Time, log *slog.Logger) (*lock, error) {
	host, _ := os.Hostname()
	l := &lock{store: store, key: layout.BackupLockKey(), lease: lease, log: log,
		rec: lockRecord{Host: host, PID: os.Getpid(), Holder: fmt.Sprintf("%s pid %d", host, os.Getpid()), Backup: backupID, Since: now().UTC()}}
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
			return nil, fmt.Errorf("%w: %s started backup %s at %s (lease until %s)", ErrLocked,
				held.Holder, held.Backup, held.Since.Format(time.RFC3339), held.Expires.Format(time.RFC3339))
		}
		log.Warn("breaking a backup lock whose holder is gone", "holder", held.Holder, "backup_id", held.Backup, "lease_until", held.Expires)
		if err := store.Delete(ctx, l.key); err != nil {
			return nil, fmt.Errorf("break the expired backup lock: %w", err)
		}
	}
	return nil, fmt.Errorf("%w: lost the race for an expired lock", ErrLocked)
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
	tick := time.NewTicker(l.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), l.lease/3)
		// Renew only our own lock: if it was broken (we stalled past the
		// lease), another backup holds it now.
		if held, err := readLock(ctx, l.store, l.key); err != nil || held.Holder != l.rec.Holder || held.Backup != l.rec.Backup {
			l.log.Error("the backup lock was taken over; not renewing it", "err", err)
			cancel()
			return
		}
		l.rec.Expires = now().UTC().Add(l.lease)
		b, _ := json.Marshal(l.rec)
		if err := l.store.Put(ctx, l.key, bytes.NewReader(b), int64(len(b)), nil); err != nil {
			l.log.Warn("could not renew the backup lock", "err", err)
		}
		cancel()
	}
}

// release stops renewing and removes the lock.
func (l *lock) release(ctx context.Context) error {
	close(l.stop)
	<-l.done
	if err := l.store.Delete(ctx, l.key); err != nil {
		return fmt.Errorf("release the backup lock: %w", err)
	}
	return nil
}

// holderGone reports whether the holder was a process on this host that
// no longer runs (killed, crashed): its lease need not be waited out.
func (r lockRecord) holderGone() bool {
	host, _ := os.Hostname()
	if r.Host != host || r.PID <= 0 {
		return false
	}
	return unix.Kill(r.PID, 0) == unix.ESRCH
}
