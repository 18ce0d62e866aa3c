//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/minio/minio-go/v7"

	"github.com/pgward/pgward/internal/miniotest"
	"github.com/pgward/pgward/wal"
)

// sidecar is a running `pgward stream`.
type sidecar struct {
	t       *testing.T
	args    []string
	env     []string
	metrics string // http://addr/metrics
	cmd     *exec.Cmd
	log     *os.File
}

func startSidecar(t *testing.T, base string, env []string, args ...string) *sidecar {
	t.Helper()
	port := miniotest.FreePort(t)
	logf, err := os.OpenFile(filepath.Join(base, "stream.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s := &sidecar{t: t, env: env, log: logf, metrics: fmt.Sprintf("http://127.0.0.1:%d/metrics", port),
		args: append(args, "--listen", fmt.Sprintf("127.0.0.1:%d", port))}
	s.start()
	t.Cleanup(func() { s.kill(); logf.Close() })
	return s
}

func (s *sidecar) start() {
	s.t.Helper()
	s.cmd = command(context.Background(), filepath.Dir(pgward), s.env, pgward, s.args...)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	// Streaming, not merely serving metrics: a kill must land mid-stream.
	waitFor(s.t, time.Minute, "the sidecar connected to the primary", func() (bool, error) {
		v, err := s.metric("pgward_stream_connected")
		return err == nil && v == 1, err
	})
}

func (s *sidecar) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *sidecar) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		s.cmd.Wait()
		s.cmd = nil
	}
}

func (s *sidecar) metric(name string) (float64, error) {
	resp, err := http.Get(s.metrics)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// waitStored waits until the sidecar has stored WAL up to lsn.
func (s *sidecar) waitStored(lsn wal.LSN, timeout time.Duration) {
	s.t.Helper()
	waitFor(s.t, timeout, "the sidecar to store up to "+lsn.String(), func() (bool, error) {
		v, err := s.metric("pgward_stream_stored_lsn")
		return err == nil && wal.LSN(v) >= lsn, fmt.Errorf("stored %s: %v", wal.LSN(v), err)
	})
}

// ledger writes one row per transaction, remembering, for each commit
// that succeeded, the WAL position before the INSERT and after COMMIT.
type ledger struct {
	mu        sync.Mutex
	committed map[int]entry
	unknown   map[int]bool // the commit's outcome was lost with the connection
}

type entry struct {
	before, after   wal.LSN
	tBefore, tAfter time.Time // client clock around the transaction
}

func (l *ledger) run(ctx context.Context, t *testing.T, connString string) {
	next := 1
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgconn.Connect(cctx, connString)
		cancel()
		if err != nil {
			time.Sleep(100 * time.Millisecond) // the primary is being replaced: retry
			continue
		}
		for ctx.Err() == nil {
			tBefore := time.Now()
			before, err := queryLSN(ctx, conn)
			if err != nil {
				break
			}
			_, err = conn.Exec(ctx, fmt.Sprintf("INSERT INTO ledger VALUES (%d)", next)).ReadAll()
			if err != nil {
				l.mu.Lock()
				l.unknown[next] = true
				l.mu.Unlock()
				next++
				break
			}
			tAfter := time.Now()
			after, err := queryLSN(ctx, conn)
			l.mu.Lock()
			if err != nil {
				after = wal.LSN(1<<63 - 1) // committed; position unknown
			}
			l.committed[next] = entry{before, after, tBefore, tAfter}
			l.mu.Unlock()
			next++
			if err != nil {
				break
			}
			time.Sleep(5 * time.Millisecond) // pace the writer, ~150 rows/s
		}
		conn.Close(context.Background())
	}
}

func queryLSN(ctx context.Context, conn *pgconn.PgConn) (wal.LSN, error) {
	res, err := conn.Exec(ctx, "SELECT pg_current_wal_insert_lsn()").ReadAll()
	if err != nil {
		return 0, err
	}
	return wal.ParseLSN(string(res[0].Rows[0][0]))
}

// TestStreamSurvivesCrashesOutageAndFailover is the sidecar's acceptance
// test: pgbench load while streaming into MinIO, two kill -9 of the
// sidecar, MinIO down for 20 s, the replica promoted and the old primary
// stopped; then restores from the repository hold every transaction
// committed up to what was stored, and none after the target.
func TestStreamSurvivesCrashesOutageAndFailover(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	pushCfg := writeConfig(t, base, "push.yaml", "repo: s3://"+bucket+"/pg\nrecipient: "+recipient+"\n")
	fetchCfg := writeConfig(t, base, "fetch.yaml", "repo: s3://"+bucket+"/pg\nidentity-file: "+identity+"\n")

	// archive_command stores into the same repository as the sidecar: both
	// paths must agree (identical content is accepted, never rewritten).
	primary := newPrimary(t, base, pgward+" --config "+pushCfg+" wal-push %p", "max_wal_senders = 10", "wal_keep_size = 256MB")
	primary.env = srv.Env()
	primary.start()
	primary.psql("CREATE TABLE ledger (id int PRIMARY KEY)")
	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(primary.connArgs(), "-i", "-s", "2", "-q", "postgres")...)

	// The replica streams from the primary.
	replicaDir := filepath.Join(base, "replica")
	must(t, base, nil, filepath.Join(pgBinDir, "pg_basebackup"), append(primary.connArgs(), "-D", replicaDir, "-X", "stream", "-R", "-c", "fast")...)
	replica := &cluster{t: t, dir: replicaDir, port: miniotest.FreePort(t), sock: base}
	replica.appendConf("hot_standby = on")
	replica.env = srv.Env()
	replica.start()

	spool := filepath.Join(base, "spool")
	source := fmt.Sprintf("host=%s,%s port=%d,%d user=postgres target_session_attrs=read-write connect_timeout=5", base, base, primary.port, replica.port)
	sc := startSidecar(t, base, srv.Env(), "--config", pushCfg, "stream", "--source", source,
		"--spool-dir", spool, "--partial-interval", "1s", "--status-interval", "1s")
	waitFor(t, 2*time.Minute, "the sidecar to stream", func() (bool, error) {
		v, err := sc.metric("pgward_stream_stored_lsn")
		return err == nil && v > 0, err
	})

	// A pgward backup of the replica, for the point-in-time restores.
	must(t, base, srv.Env(), pgward, "--config", pushCfg, "backup", "--source", fmt.Sprintf("host=%s port=%d user=postgres", base, replica.port),
		"--checkpoint", "fast", "--wal-timeout", "2m")

	// The base backup for the restores, taken once the stream runs.
	restoreBase := filepath.Join(base, "backup")
	must(t, base, nil, filepath.Join(pgBinDir, "pg_basebackup"), append(primary.connArgs(), "-D", restoreBase, "-X", "none", "-c", "fast")...)

	led := &ledger{committed: map[int]entry{}, unknown: map[int]bool{}}
	ctx, stopWriter := context.WithCancel(context.Background())
	var writer sync.WaitGroup
	writer.Go(func() {
		led.run(ctx, t, fmt.Sprintf("host=%s,%s port=%d,%d user=postgres dbname=postgres target_session_attrs=read-write", base, base, primary.port, replica.port))
	})
	defer func() { stopWriter(); writer.Wait() }()
	load := func(seconds int, on *cluster) {
		t.Helper()
		must(t, base, nil, pgbench, append(on.connArgs(), "-c", "2", "-j", "2", "-T", strconv.Itoa(seconds), "-n", "postgres")...)
	}

	// Two kill -9 mid-load, each followed by a restart.
	for range 2 {
		load(3, primary)
		sc.kill()
		load(2, primary)
		sc.start()
	}
	sc.waitStored(currentLSN(t, primary), 2*time.Minute)

	// Storage down for 20 s under load, then back.
	srv.Stop(t)
	load(20, primary)
	if errs, _ := sc.metric("pgward_stream_upload_errors_total"); errs == 0 {
		t.Errorf("MinIO was down for 20 s but the sidecar reports no upload errors")
	}
	srv.Restart(t)
	sc.waitStored(currentLSN(t, primary), 2*time.Minute)

	tBefore := time.Now()
	load(2, primary)

	// Failover: the old primary stops (fast: its last WAL reaches the
	// replica), the replica is promoted.
	primary.stop("fast")
	must(t, base, nil, filepath.Join(pgBinDir, "pg_ctl"), "-D", replicaDir, "-w", "promote")
	waitFor(t, 3*time.Minute, "the sidecar on timeline 2", func() (bool, error) {
		v, err := sc.metric("pgward_stream_timeline")
		return err == nil && v == 2, err
	})
	load(4, replica)
	midTarget := currentLSN(t, replica)
	tAfter := time.Now()
	load(3, replica)
	stopWriter()
	writer.Wait()
	final := currentLSN(t, replica)
	sc.waitStored(final, 2*time.Minute)
	sc.stop()
	replica.switchAndWaitArchived(time.Minute) // archive_command got through everything too

	led.mu.Lock()
	committed := led.committed
	led.mu.Unlock()
	if len(committed) < 100 {
		t.Fatalf("only %d ledger transactions committed; the test did not exercise enough", len(committed))
	}

	// Restore to the end of what was stored: every committed row is there.
	latest := restoreCopy(t, base, restoreBase, "latest", fetchCfg, srv.Env())
	latest.waitPromoted(3 * time.Minute)
	got := ledgerIDs(t, latest)
	for id := range committed {
		if !got[id] {
			t.Errorf("ledger row %d committed before %s is missing after the restore", id, final)
		}
	}
	if t.Failed() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for oi := range minioClient(t, srv).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "pg/", Recursive: true, WithMetadata: true}) {
			t.Logf("stored: %s %d %v", oi.Key, oi.Size, oi.UserMetadata)
		}
		return
	}
	latest.stop("immediate")

	// Restore to a point on the new timeline: rows committed before it
	// are there, rows begun after it are not.
	mid := restoreCopy(t, base, restoreBase, "mid", fetchCfg, srv.Env(), "recovery_target_lsn = '"+midTarget.String()+"'")
	mid.waitPromoted(3 * time.Minute)
	got = ledgerIDs(t, mid)
	present, absent := 0, 0
	for id, e := range committed {
		switch {
		case e.after <= midTarget:
			present++
			if !got[id] {
				t.Errorf("ledger row %d (committed by %s) missing after restoring to %s", id, e.after, midTarget)
			}
		case e.before > midTarget:
			absent++
			if got[id] {
				t.Errorf("ledger row %d (begun after %s) present after restoring to %s", id, e.before, midTarget)
			}
		}
	}
	if present == 0 || absent == 0 {
		t.Fatalf("target %s splits nothing: %d rows before, %d after", midTarget, present, absent)
	}
	log, _ := os.ReadFile(mid.logFile())
	if !strings.Contains(string(log), `restored log file "00000002.history"`) {
		t.Errorf("the restore did not follow timeline 2:\n%s", tail(string(log), 20))
	}
	mid.stop("immediate")

	// pgward restore --to-time, before and after the failover: rows
	// committed before the time are there, rows begun after it are not.
	for i, target := range []time.Time{tBefore, tAfter} {
		dir := filepath.Join(base, fmt.Sprintf("pitr-%d", i))
		port := miniotest.FreePort(t)
		r := run(t, base, srv.Env(), pgward, "--config", fetchCfg, "restore", "--pgdata", dir,
			"--to-time", target.UTC().Format(time.RFC3339Nano), "--start", "--port", strconv.Itoa(port), "--start-timeout", "3m")
		if r.code != 0 {
			t.Fatalf("pgward restore --to-time %s: exit %d: %s%s", target.UTC().Format(time.RFC3339Nano), r.code, r.stdout, r.stderr)
		}
		c := &cluster{t: t, dir: dir, port: port, sock: base}
		t.Cleanup(func() { c.stop("immediate") })
		got := ledgerIDs(t, c)
		present, absent := 0, 0
		for id, e := range committed {
			switch {
			case e.tAfter.Before(target):
				present++
				if !got[id] {
					t.Errorf("restore to %s: ledger row %d (committed by %s) is missing", target.Format(time.RFC3339Nano), id, e.tAfter.Format(time.RFC3339Nano))
				}
			case e.tBefore.After(target):
				absent++
				if got[id] {
					t.Errorf("restore to %s: ledger row %d (begun %s) is present", target.Format(time.RFC3339Nano), id, e.tBefore.Format(time.RFC3339Nano))
				}
			}
		}
		if present == 0 || absent == 0 {
			t.Errorf("restore to %s splits nothing: %d rows before, %d after", target.Format(time.RFC3339Nano), present, absent)
		}
		c.stop("immediate")
	}
}

func currentLSN(t *testing.T, c *cluster) wal.LSN {
	t.Helper()
	lsn, err := wal.ParseLSN(c.psql("SELECT pg_current_wal_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

// restoreCopy copies the base backup and recovers it from the repository.
func restoreCopy(t *testing.T, base, backup, name, fetchCfg string, env []string, conf ...string) *cluster {
	t.Helper()
	dir := filepath.Join(base, "restore-"+name)
	must(t, base, nil, "cp", "-a", backup, dir)
	c := restoreCluster(t, base, dir, pgward+" --config "+fetchCfg+" wal-fetch %f %p", append(conf, "recovery_target_timeline = 'latest'")...)
	c.env = env
	c.start()
	return c
}

func ledgerIDs(t *testing.T, c *cluster) map[int]bool {
	t.Helper()
	ids := map[int]bool{}
	for _, line := range strings.Fields(c.psql("SELECT id FROM ledger")) {
		id, _ := strconv.Atoi(line)
		ids[id] = true
	}
	return ids
}
