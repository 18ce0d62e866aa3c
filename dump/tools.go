package dump

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Tools finds the PostgreSQL client programs pgward runs: in Dir when
// given, else in Debian's /usr/lib/postgresql/<major>/bin for the server's
// major version, else on PATH.
type Tools struct {
	Dir string
}

// Find returns the path of program for a server of major version major.
func (t Tools) Find(program string, major int) (string, error) {
	if t.Dir != "" {
		p := filepath.Join(t.Dir, program)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s not found in --pg-bin %s", program, t.Dir)
		}
		return p, nil
	}
	if major > 0 {
		p := filepath.Join("/usr/lib/postgresql", strconv.Itoa(major), "bin", program)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(program)
	if err != nil {
		return "", fmt.Errorf("%s not found (looked in /usr/lib/postgresql/%d/bin and PATH): install postgresql-client-%d, or give --pg-bin DIR", program, major, major)
	}
	return p, nil
}

var versionLine = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// ProgramVersion runs program --version and returns its version string
// ("15.18") and major version.
func ProgramVersion(ctx context.Context, program string) (string, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, program, "--version").Output()
	if err != nil {
		return "", 0, fmt.Errorf("%s --version: %w", program, err)
	}
	m := versionLine.FindSubmatch(out)
	if m == nil {
		return "", 0, fmt.Errorf("%s --version printed %q: not a PostgreSQL program", program, bytes.TrimSpace(out))
	}
	major, _ := strconv.Atoi(string(m[1]))
	v := string(m[1])
	if len(m[2]) > 0 {
		v += "." + string(m[2])
	}
	return v, major, nil
}

// CheckClientVersion refuses a client program older than the server: an
// old pg_dump cannot read a newer server's catalogs.
func CheckClientVersion(program, programVersion string, programMajor int, serverVersion string, serverMajor int) error {
	if programMajor >= serverMajor {
		return nil
	}
	name := filepath.Base(program)
	return fmt.Errorf("%s %s (%s) is older than the server (PostgreSQL %s) and cannot dump it: install postgresql-client-%d "+
		"(apt-get install postgresql-client-%d) or give --pg-bin /usr/lib/postgresql/%d/bin",
		name, programVersion, program, serverVersion, serverMajor, serverMajor, serverMajor)
}

// tailBuffer keeps the last bytes written to it: a failed program's
// last words, without holding all it printed.
type tailBuffer struct {
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return strings.TrimSpace(string(t.buf)) }

// command prepares a client program: it dies with pgward, and a cancelled
// ctx asks it to stop (SIGTERM) before killing it.
func command(ctx context.Context, program string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// programError words a failed program's end: its own error text first.
func programError(name string, err error, stderr *tailBuffer) error {
	if msg := stderr.String(); msg != "" {
		return fmt.Errorf("%s failed (%v): %s", name, err, msg)
	}
	return fmt.Errorf("%s failed: %w", name, err)
}
