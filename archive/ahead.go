package archive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/pgward/pgward/wal"
)

// Catch-up after an outage: PostgreSQL calls archive_command for one file
// at a time, each waiting for the last, so a backlog of .ready files is
// pushed at the speed of one file's round trips. PushAhead lets the call
// for the oldest file store the next ones too, in parallel; the calls for
// them then find them stored (a marker in pg_wal says so) and return
// without sealing them again. With one .ready file at a time, nothing is
// pushed ahead, and a call costs one directory read more.

// aheadDir is where pushed-ahead files are marked, beside pg_wal's own
// archive_status (PostgreSQL ignores names it does not know there).
const aheadDir = ".pgward-pushed"

// ReadyAfter lists the WAL files waiting in the archive_status directory
// beside path (a pg_wal/<file> path as archive_command gives it), other
// than path's own, oldest first, at most max.
func ReadyAfter(path string, max int) []string {
	dir := filepath.Dir(path)
	entries, err := os.ReadDir(filepath.Join(dir, "archive_status"))
	if err != nil || max <= 0 {
		return nil
	}
	self := filepath.Base(path)
	var out []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".ready")
		if !ok || name == self {
			continue
		}
		if _, err := wal.ParseFileName(name); err == nil {
			out = append(out, name)
		}
	}
	// History files first, as PostgreSQL's archiver takes them; then WAL
	// order, which names sort in within a timeline.
	slices.SortFunc(out, func(a, b string) int {
		ha, hb := strings.HasSuffix(a, ".history"), strings.HasSuffix(b, ".history")
		if ha != hb {
			if ha {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// PushAhead pushes path and the files named in ahead (from the same
// pg_wal), at most jobs at a time. It returns path's result; a file
// pushed ahead that fails is only reported to warn (one call at a time),
// and PostgreSQL's own call for it will push it again.
func (a *Archive) PushAhead(ctx context.Context, path string, ahead []string, jobs int, warn func(name string, err error)) (PushResult, error) {
	if len(ahead) == 0 {
		return a.Push(ctx, path)
	}
	dir := filepath.Dir(path)
	var warnMu sync.Mutex
	report := func(name string, err error) {
		warnMu.Lock()
		defer warnMu.Unlock()
		warn(name, err)
	}
	sem := make(chan struct{}, max(1, jobs))
	// The file asked for is pushed as usual, beside at most jobs-1 ahead.
	var wg sync.WaitGroup
	for _, name := range ahead {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			p := filepath.Join(dir, name)
			if _, err := a.push(ctx, p, false); err != nil {
				if !errors.Is(err, fs.ErrNotExist) { // archived and removed meanwhile
					report(name, err)
				}
				return
			}
			if err := markPushed(dir, name); err != nil {
				report(name, err)
			}
		})
	}
	sem <- struct{}{}
	res, err := a.Push(ctx, path)
	<-sem
	wg.Wait()
	return res, err
}

// markPushed records that name was stored ahead of its own call.
func markPushed(walDir, name string) error {
	d := filepath.Join(walDir, aheadDir)
	if err := os.MkdirAll(d, 0o700); err != nil {
		return fmt.Errorf("mark %s pushed: %w", name, err)
	}
	return os.WriteFile(filepath.Join(d, name), nil, 0o600)
}

// takePushedMark reports whether path was pushed ahead, and removes the
// mark: its own call checks the stored copy once, then it is done.
func takePushedMark(path string) bool {
	m := filepath.Join(filepath.Dir(path), aheadDir, filepath.Base(path))
	return os.Remove(m) == nil
}
