//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// cluster is a scratch PostgreSQL server on a loopback port, with its
// socket in its own directory.
type cluster struct {
	t    *testing.T
	env  []string // the postmaster's environment, inherited by archive_command
	dir  string   // data directory
	port int
	sock string
}

// newPrimary runs initdb and configures WAL archiving through pgward.
func newPrimary(t *testing.T, base string, archiveCommand string, extraConf ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: filepath.Join(base, "primary"), port: miniotest.FreePort(t), sock: base}
	must(t, base, nil, filepath.Join(pgBinDir, "initdb"), "-D", c.dir, "-A", "trust", "-U", "postgres", "--no-sync")
	conf := []string{
		"wal_level = replica",
		"archive_mode = on",
		"archive_command = '" + strings.ReplaceAll(archiveCommand, "'", "''") + "'",
		"wal_keep_size = 1GB", // keep archived segments in pg_wal for byte comparisons
		"fsync = off",         // scratch clusters; pgward's own writes still fsync
	}
	c.appendConf(append(conf, extraConf...)...)
	return c
}

// fromBaseBackup makes a cluster from a pg_basebackup of src, set up to
// recover through restore_command.
func restoreCluster(t *testing.T, base, dataDir, restoreCommand string, extraConf ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: dataDir, port: miniotest.FreePort(t), sock: base}
	if err := os.WriteFile(filepath.Join(dataDir, "recovery.signal"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	own(t, filepath.Join(dataDir, "recovery.signal"))
	conf := []string{
		"archive_mode = off",
		"restore_command = '" + strings.ReplaceAll(restoreCommand, "'", "''") + "'",
		"recovery_target_action = promote",
	}
	c.appendConf(append(conf, extraConf...)...)
	return c
}

func (c *cluster) appendConf(lines ...string) {
	c.t.Helper()
	lines = append(lines, fmt.Sprintf("port = %d", c.port), "listen_addresses = ''",
		"unix_socket_directories = '"+c.sock+"'")
	f, err := os.OpenFile(filepath.Join(c.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, "\n# e2e test settings")
	fmt.Fprintln(f, strings.Join(lines, "\n"))
}

func (c *cluster) logFile() string {
	return filepath.Join(filepath.Dir(c.dir), filepath.Base(c.dir)+".log")
}

func (c *cluster) start() {
	c.t.Helper()
	r := run(c.t, filepath.Dir(c.dir), c.env, filepath.Join(pgBinDir, "pg_ctl"), "-D", c.dir, "-l", c.logFile(), "-w", "-t", "120", "start")
	if r.code != 0 {
		log, _ := os.ReadFile(c.logFile())
		c.t.Fatalf("pg_ctl start %s: exit %d: %s\n--- server log ---\n%s", c.dir, r.code, r.stderr, tail(string(log), 40))
	}
	c.t.Cleanup(func() { c.stop("immediate") })
}

func (c *cluster) stop(mode string) {
	run(c.t, filepath.Dir(c.dir), nil, filepath.Join(pgBinDir, "pg_ctl"), "-D", c.dir, "-m", mode, "-w", "stop")
}

// psql runs SQL and returns the unaligned, tuples-only output.
func (c *cluster) psql(sql string) string {
	c.t.Helper()
	out := must(c.t, c.sock, nil, filepath.Join(pgBinDir, "psql"), "-X", "-h", c.sock, "-p", strconv.Itoa(c.port),
		"-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql)
	return strings.TrimSpace(out)
}

// tryPSQL is psql that reports failure instead of failing the test.
func (c *cluster) tryPSQL(sql string) (string, error) {
	r := run(c.t, c.sock, nil, filepath.Join(pgBinDir, "psql"), "-X", "-h", c.sock, "-p", strconv.Itoa(c.port),
		"-U", "postgres", "-d", "postgres", "-Atc", sql)
	if r.code != 0 {
		return "", fmt.Errorf("psql: %s", strings.TrimSpace(r.stderr))
	}
	return strings.TrimSpace(r.stdout), nil
}

// connArgs are the libpq options for client tools.
func (c *cluster) connArgs() []string {
	return []string{"-h", c.sock, "-p", strconv.Itoa(c.port), "-U", "postgres"}
}

// switchAndWaitArchived forces a segment switch and waits until the
// archiver has stored the segment that was current.
func (c *cluster) switchAndWaitArchived(timeout time.Duration) string {
	c.t.Helper()
	seg := c.psql("SELECT pg_walfile_name(pg_switch_wal())")
	waitFor(c.t, timeout, "segment "+seg+" archived", func() (bool, error) {
		out, err := c.tryPSQL("SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver")
		if err != nil {
			return false, err
		}
		f := strings.Split(out, "|")
		// A switch with nothing new to close returns the segment already
		// archived, and a backup history file archived after it can be
		// the "last" one; the archiver's .done file settles it.
		_, derr := os.Stat(filepath.Join(c.dir, "pg_wal", "archive_status", seg+".done"))
		return (len(f) == 3 && f[0] >= seg) || derr == nil, fmt.Errorf("archiver: %s", out)
	})
	return seg
}

// waitPromoted waits until a recovering cluster has finished recovery.
func (c *cluster) waitPromoted(timeout time.Duration) {
	c.t.Helper()
	waitFor(c.t, timeout, "recovery to finish", func() (bool, error) {
		out, err := c.tryPSQL("SELECT pg_is_in_recovery()")
		if err != nil && !c.running() {
			log, _ := os.ReadFile(c.logFile())
			c.t.Fatalf("the server stopped during recovery:\n%s", tail(string(log), 30))
		}
		return out == "f", err
	})
}

// running reports whether the postmaster is up.
func (c *cluster) running() bool {
	return run(c.t, filepath.Dir(c.dir), nil, filepath.Join(pgBinDir, "pg_ctl"), "-D", c.dir, "status").code == 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// keepSwitching closes a WAL segment on c every half second until the
// returned stop is called, so archive_command stores the WAL a backup
// waits for without waiting for segments to fill.
func (c *cluster) keepSwitching() (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				c.tryPSQL("SELECT pg_switch_wal()")
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// newReplicaOf makes a streaming replica of primary.
func newReplicaOf(t *testing.T, base string, primary *cluster, extraConf ...string) *cluster {
	t.Helper()
	dir := filepath.Join(base, "replica")
	must(t, base, nil, filepath.Join(pgBinDir, "pg_basebackup"), append(primary.connArgs(), "-D", dir, "-X", "stream", "-R", "-c", "fast")...)
	replica := &cluster{t: t, dir: dir, port: miniotest.FreePort(t), sock: base}
	replica.appendConf(append([]string{"hot_standby = on", "archive_mode = off"}, extraConf...)...)
	replica.start()
	return replica
}
