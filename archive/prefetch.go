package archive

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/wal"
)

// Spool is a directory of prefetched WAL files, private to one recovering
// server. wal-fetch takes files from it; a background prefetcher fills it
// with the segments after the one PostgreSQL asked for last.
type Spool struct {
	Dir string
}

const (
	spoolOrigin = ".origin" // which repository and cluster the files came from
	spoolWanted = ".wanted" // the name PostgreSQL asked for last
	spoolLock   = ".lock"   // held by the running prefetcher
	tempPrefix  = ".pgward-fetch-"
)

// Take moves a prefetched name to dest and reports whether it was there.
// Files that sort before name are stale (replay has passed them) and are
// removed.
func (s Spool) Take(name, dest string) (bool, error) {
	s.prune(name)
	err := os.Rename(filepath.Join(s.Dir, name), dest)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("take %s from prefetch spool: %w", name, err)
	}
	return true, nil
}

func (s Spool) prune(name string) {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if n := e.Name(); n < name && isWALName(n) {
			os.Remove(filepath.Join(s.Dir, n))
		}
	}
}

func isWALName(n string) bool {
	_, err := wal.ParseFileName(n)
	return err == nil
}

// Claim ties the spool to origin (the repository and cluster it is filled
// from). Files prefetched for another origin are removed first, so one
// server can never be served another's segment of the same name.
func (s Spool) Claim(origin string) error {
	path := filepath.Join(s.Dir, spoolOrigin)
	old, err := os.ReadFile(path)
	if err == nil && string(old) == origin {
		return nil
	}
	if errors.Is(err, os.ErrNotExist) {
		if _, serr := os.Stat(s.Dir); errors.Is(serr, os.ErrNotExist) {
			if err := os.MkdirAll(s.Dir, 0o700); err != nil {
				return fmt.Errorf("prefetch spool: %w", err)
			}
		}
	} else if err != nil {
		return fmt.Errorf("prefetch spool: %w", err)
	}
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return fmt.Errorf("prefetch spool: %w", err)
	}
	for _, e := range entries {
		if isWALName(e.Name()) {
			if err := os.Remove(filepath.Join(s.Dir, e.Name())); err != nil {
				return fmt.Errorf("prefetch spool: %w", err)
			}
		}
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(origin), 0o600); err != nil {
		return fmt.Errorf("prefetch spool: %w", err)
	}
	return os.Rename(tmp, path)
}

// Await waits while a running prefetcher is still writing name, then
// moves it to dest like Take. It reports false at once when no prefetcher
// is working on name, so the caller fetches it itself instead of fetching
// the same object twice.
func (s Spool) Await(ctx context.Context, name, dest string, timeout time.Duration) (bool, error) {
	took, err := s.Take(name, dest)
	if took || err != nil {
		return took, err
	}
	// Poll: the file appears by rename, and waits last a few milliseconds.
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(timeout)
	for s.writing(name) && s.Busy() && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
		}
		if _, err := os.Stat(filepath.Join(s.Dir, name)); err == nil {
			break
		}
	}
	return s.Take(name, dest)
}

// writing reports whether a temporary file for name is in the spool.
func (s Spool) writing(name string) bool {
	matches, _ := filepath.Glob(filepath.Join(s.Dir, tempPrefix+name+"-*"))
	return len(matches) > 0
}

// Want records name as the file PostgreSQL asked for last, creating the
// spool directory if needed.
func (s Spool) Want(name string) error {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return fmt.Errorf("prefetch spool: %w", err)
	}
	tmp := filepath.Join(s.Dir, spoolWanted+".tmp")
	if err := os.WriteFile(tmp, []byte(name), 0o600); err != nil {
		return fmt.Errorf("prefetch spool: %w", err)
	}
	return os.Rename(tmp, filepath.Join(s.Dir, spoolWanted))
}

func (s Spool) wanted() (string, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir, spoolWanted))
	return strings.TrimSpace(string(b)), err
}

// Busy reports whether a prefetcher holds the spool.
func (s Spool) Busy() bool {
	unlock, ok, err := s.tryLock()
	if err != nil || !ok {
		return err == nil
	}
	unlock()
	return false
}

func (s Spool) tryLock() (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(filepath.Join(s.Dir, spoolLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("prefetch spool lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("prefetch spool lock: %w", err)
	}
	return func() { f.Close() }, true, nil
}

// Prefetch fills the spool with up to count segments following the one
// PostgreSQL asked for last, downloading them in parallel. It follows the
// requests as they advance and returns when the window is full and no
// newer request arrived, or when the repository has no next segment. Only
// one prefetcher runs per spool; a second returns at once.
func (a *Archive) Prefetch(ctx context.Context, s Spool, count int, segSize uint32) error {
	unlock, ok, err := s.tryLock()
	if err != nil || !ok {
		return err
	}
	defer unlock()
	s.removeTemps()
	log := a.logger().With("spool", s.Dir)

	for {
		want, err := s.wanted()
		if err != nil {
			return fmt.Errorf("prefetch: %w", err)
		}
		var todo []string
		name := want
		for range count {
			if name, err = wal.NextSegmentName(name, segSize); err != nil {
				return fmt.Errorf("prefetch after %s: %w", want, err)
			}
			if _, err := os.Stat(filepath.Join(s.Dir, name)); errors.Is(err, os.ErrNotExist) {
				todo = append(todo, name)
			}
		}
		if len(todo) == 0 {
			return nil
		}
		// Fetch in order with a few workers, so the segment needed next is
		// ready first; more workers than cores only pay off for latency
		// (each holds about two segments in memory).
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			stop     bool
			firstErr error
			next     = make(chan string, len(todo))
		)
		for _, n := range todo {
			next <- n
		}
		close(next)
		for range min(len(todo), max(4, 2*runtime.GOMAXPROCS(0))) {
			wg.Go(func() {
				for n := range next {
					mu.Lock()
					stopped := stop
					mu.Unlock()
					if stopped {
						return
					}
					err := a.fetch(ctx, n, filepath.Join(s.Dir, n), fetchOptions{durable: true})
					if err == nil {
						log.Debug("segment prefetched", "segment", n)
						continue
					}
					mu.Lock()
					stop = true // the archive ends here, or it is failing: wal-fetch will say which
					if !errors.Is(err, ErrNotFound) && firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if stop {
			return firstErr
		}
	}
}

func (s Spool) removeTemps() {
	entries, _ := os.ReadDir(s.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			os.Remove(filepath.Join(s.Dir, e.Name()))
		}
	}
}
