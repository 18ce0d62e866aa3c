package basebackup

import (
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage/memory"
)

func TestLock(t *testing.T) {
	store := memory.New()
	layout := catalog.Layout{Cluster: "c"}
	log := slog.New(slog.DiscardHandler)
	// The renewing goroutines read the clock: keep it atomic.
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 21, 0, 30, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }

	a, err := acquireLock(t.Context(), store, layout.BackupLockKey(), time.Hour, now, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(t.Context(), store, layout.BackupLockKey(), time.Hour, now, log, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock while the first holds: %v, want ErrLocked", err)
	}

	// The first holder stalls past its lease: the next one breaks it, and
	// the stalled holder's release leaves the new lock alone.
	clock.Add(int64(2 * time.Hour))
	b, err := acquireLock(t.Context(), store, layout.BackupLockKey(), time.Hour, now, log, nil)
	if err != nil {
		t.Fatalf("lock after the lease expired: %v", err)
	}
	if err := a.release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(t.Context(), store, layout.BackupLockKey(), time.Hour, now, log, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("the stalled holder's release removed the new holder's lock: %v", err)
	}
	if err := a.renewOnce(now); !errors.Is(err, errLockTaken) {
		t.Errorf("renewal by the stalled holder: %v, want errLockTaken", err)
	}
	if err := b.release(t.Context()); err != nil {
		t.Fatal(err)
	}
	c, err := acquireLock(t.Context(), store, layout.BackupLockKey(), time.Hour, now, log, nil)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	c.release(t.Context())
}

func TestHolderGone(t *testing.T) {
	host, _ := os.Hostname()
	boot, ns := processIdentity()
	alive := lockRecord{Host: host, BootID: boot, PIDNS: ns, PID: os.Getpid()}
	if alive.holderGone() {
		t.Error("this very process counted as gone")
	}
	dead := alive
	dead.PID = 1 << 22 // above pid_max: no such process
	if !dead.holderGone() {
		t.Error("a process that does not exist counted as alive")
	}
	other := dead
	other.BootID = "another-boot"
	if other.holderGone() {
		t.Error("a holder of another kernel boot counted as gone without waiting for its lease")
	}
}

// A backup still being taken cannot be deleted: its backup.json would
// name parts that are gone.
func TestDeleteRefusesTheBackupInProgress(t *testing.T) {
	store := memory.New()
	layout := catalog.Layout{Cluster: "c"}
	l, err := acquireLock(t.Context(), store, layout.BackupLockKey(), time.Hour, time.Now, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	l.setBackup("B1")
	part := layout.BackupPartKey("B1", "base.tar", 0, ".zst")
	store.Put(t.Context(), part, strings.NewReader("x"), 1, nil)
	if _, err := Delete(t.Context(), store, layout, "B1"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Delete of the running backup = %v, want ErrLocked", err)
	}
	if _, err := store.Stat(t.Context(), part); err != nil {
		t.Fatalf("the running backup's part was deleted: %v", err)
	}
	l.release(t.Context())
	if found, err := Delete(t.Context(), store, layout, "B1"); err != nil || !found {
		t.Fatalf("Delete after the backup ended = %v, %v", found, err)
	}
}
