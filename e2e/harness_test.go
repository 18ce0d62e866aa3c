//go:build e2e

// Package e2e drives the real pgward binary against real PostgreSQL 15
// clusters and a real MinIO server.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Shared by every test: set up once in TestMain.
var (
	workDir  string // owned by the postgres OS user when running as root
	pgward   string // the built binary, inside workDir
	pgBinDir string
	runAs    *syscall.Credential // nil unless running as root
	runHome  string
)

// afterTests run once every test has: the benches print their summary.
var afterTests []func()

func TestMain(m *testing.M) {
	code, err := setup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		os.Exit(2)
	}
	code = m.Run()
	for _, f := range afterTests {
		f()
	}
	if code == 0 {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

func setup() (int, error) {
	var err error
	pgBinDir, err = findPGBin()
	if err != nil {
		return 0, err
	}
	workDir, err = os.MkdirTemp("", "pgward-e2e-")
	if err != nil {
		return 0, err
	}
	// PostgreSQL refuses to run as root; archive_command then runs as
	// postgres and must be able to read the binary and keys.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return 0, fmt.Errorf("running as root needs a postgres OS user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		runAs = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		runHome = u.HomeDir
		if err := os.Chown(workDir, uid, gid); err != nil {
			return 0, err
		}
	}
	if err := os.Chmod(workDir, 0o755); err != nil {
		return 0, err
	}
	pgward = filepath.Join(workDir, "pgward")
	build := exec.Command("go", "build", "-o", pgward, "../cmd/pgward")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("build pgward: %w", err)
	}
	return 0, nil
}

func findPGBin() (string, error) {
	if d := os.Getenv("PGWARD_PG_BINDIR"); d != "" {
		return d, nil
	}
	for _, d := range []string{"/usr/lib/postgresql/15/bin"} {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		return strings.TrimSpace(string(out)), nil
	}
	return "", fmt.Errorf("PostgreSQL 15 server binaries not found: install postgresql-15 or set PGWARD_PG_BINDIR")
}

// testDir returns a fresh directory the postgres user owns.
func testDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp(workDir, strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Fatal(err)
	}
	own(t, dir)
	os.Chmod(dir, 0o755)
	return dir
}

// own hands path to the postgres user when running as root.
func own(t *testing.T, path string) {
	t.Helper()
	if runAs != nil {
		if err := os.Chown(path, int(runAs.Uid), int(runAs.Gid)); err != nil {
			t.Fatal(err)
		}
	}
}

// result is what a command did.
type result struct {
	code           int
	stdout, stderr string
}

// command prepares name to run as the postgres user (when root) with env
// added to a minimal environment.
func command(ctx context.Context, dir string, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + pgBinDir + ":/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "TZ=UTC"}, env...)
	if runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
		cmd.Env = append(cmd.Env, "HOME="+runHome)
	} else {
		cmd.Env = append(cmd.Env, "HOME="+os.Getenv("HOME"))
	}
	return cmd
}

// run runs a command and returns its result; it fails the test only if the
// command could not start.
func run(t *testing.T, dir string, env []string, name string, args ...string) result {
	t.Helper()
	return runWithin(t, 5*time.Minute, dir, env, name, args...)
}

// runWithin is run with a time limit other than five minutes (a bench's
// long restore).
func runWithin(t *testing.T, limit time.Duration, dir string, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit) // also used from Cleanup, after t.Context() ends
	defer cancel()
	cmd := command(ctx, dir, env, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("run %s %v: %v", name, args, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// must runs a command that has to succeed.
func must(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	r := run(t, dir, env, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, lastErr)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// keyPair generates an identity readable by the postgres user, in
// dir/key.txt.
func keyPair(t *testing.T, dir string) (identityFile, recipient string) {
	t.Helper()
	return namedKeyPair(t, dir, "key.txt")
}

// namedKeyPair generates an identity in dir/name.
func namedKeyPair(t *testing.T, dir, name string) (identityFile, recipient string) {
	t.Helper()
	identityFile = filepath.Join(dir, name)
	out := must(t, dir, nil, pgward, "keys", "generate", "--output", identityFile)
	return identityFile, strings.TrimSpace(out)
}

// repoDir creates an empty file repository directory under base.
func repoDir(t *testing.T, base string) string {
	t.Helper()
	dir := filepath.Join(base, "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	own(t, dir)
	return dir
}

// archiving is a running primary that archives with pgward wal-push into
// a fresh encrypted file repository.
type archiving struct {
	base, identity, recipient, repoPath, repo, source string
	primary                                           *cluster
}

func newArchiving(t *testing.T) archiving {
	t.Helper()
	a := archiving{base: testDir(t)}
	a.identity, a.recipient = keyPair(t, a.base)
	a.repoPath = repoDir(t, a.base)
	a.repo = "file://" + a.repoPath
	a.primary = newPrimary(t, a.base, pgward+" --repo "+a.repo+" --recipient "+a.recipient+" wal-push %p", "max_wal_senders = 10")
	a.primary.start()
	a.source = fmt.Sprintf("host=%s port=%d user=postgres", a.base, a.primary.port)
	return a
}
