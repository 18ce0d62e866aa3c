package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Started is what --start saw.
type Started struct {
	Reached  string        `json:"reached"` // PostgreSQL's own words on where recovery stopped
	Duration time.Duration `json:"duration_nanoseconds"`
}

var (
	stopLine = regexp.MustCompile(`recovery stopping [^\n]*`)
	redoLine = regexp.MustCompile(`redo done at [^\n]*`)
	// Not "ready to accept read-only connections": that comes at
	// consistency, before the target.
	readyLine = regexp.MustCompile(`database system is ready to accept connections|recovery has paused|database system is shut down`)
	fatalLine = regexp.MustCompile(`(FATAL|PANIC): [^\n]*`)
)

// Start starts the restored cluster with pg_ctl (as the postgres user when
// run as root, after handing it the directory), waits until recovery
// reaches its target or fails, and reports where it stopped.
func Start(ctx context.Context, pgdata string, timeout time.Duration) (Started, error) {
	begun := time.Now()
	pgCtl, err := findPgCtl(pgdata)
	if err != nil {
		return Started{}, err
	}
	logPath := filepath.Join(pgdata, "pgward-start.log")
	cmd := exec.CommandContext(ctx, pgCtl, "-D", pgdata, "-l", logPath, "start")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return Started{}, errors.New("--start as root needs a postgres OS user (PostgreSQL refuses to run as root)")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := filepath.WalkDir(pgdata, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			return Started{}, fmt.Errorf("hand %s to postgres: %w", pgdata, err)
		}
		if err := os.WriteFile(logPath, nil, 0o600); err == nil {
			os.Chown(logPath, uid, gid)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return Started{}, fmt.Errorf("pg_ctl start: %v: %s%s", err, bytes.TrimSpace(out), logTail(logPath))
	}
	return waitRecovery(ctx, logPath, begun, timeout)
}

// waitRecovery watches the server log until recovery reaches its target
// or fails. A failure's error carries the log's last lines.
func waitRecovery(ctx context.Context, logPath string, begun time.Time, timeout time.Duration) (Started, error) {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		log, _ := os.ReadFile(logPath)
		if m := fatalLine.Find(log); m != nil && !bytes.Contains(m, []byte("the database system is starting up")) &&
			!bytes.Contains(m, []byte("not yet accepting connections")) {
			return Started{}, fmt.Errorf("recovery failed: %s%s", m, logTail(logPath))
		}
		if readyLine.Match(log) {
			s := Started{Duration: time.Since(begun)}
			if m := stopLine.Find(log); m != nil {
				s.Reached = strings.TrimSpace(string(m))
			} else if m := redoLine.Find(log); m != nil {
				s.Reached = strings.TrimSpace(string(m)) // the end of the archive
			}
			return s, nil
		}
		if time.Now().After(deadline) {
			return Started{}, fmt.Errorf("recovery did not finish within %s%s", timeout, logTail(logPath))
		}
		select {
		case <-ctx.Done():
			return Started{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// Bounds of the server log quoted in an error.
const (
	tailLines = 20
	tailBytes = 4 << 10
)

// logTail is the end of the log at path, at most tailLines lines and
// tailBytes bytes, as a suffix for an error ("" if there is none).
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf(" (no server log at %s: %v)", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-tailBytes, 0)
	buf := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(buf, off)
	buf = bytes.TrimRight(buf[:n], "\n")
	if off > 0 { // drop the cut first line
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	lines := strings.Split(string(buf), "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return fmt.Sprintf(" (the server log %s is empty)", path)
	}
	return fmt.Sprintf("\nlast lines of the server log %s:\n  %s", path, strings.Join(lines, "\n  "))
}

// findPgCtl finds pg_ctl for the data directory's PostgreSQL version.
func findPgCtl(pgdata string) (string, error) {
	v, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if err != nil {
		return "", fmt.Errorf("read PG_VERSION: %w", err)
	}
	candidate := filepath.Join("/usr/lib/postgresql", strings.TrimSpace(string(v)), "bin", "pg_ctl")
	if _, err := os.Stat(candidate); err == nil {
		return candidate, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("pg_ctl for PostgreSQL %s not found", strings.TrimSpace(string(v)))
}
