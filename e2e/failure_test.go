//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// With the wrong identity, every fetch is a real error: PostgreSQL must
// stop instead of ending recovery and promoting at the wrong point.
func TestRecoveryStopsOnWrongKey(t *testing.T) {
	base := testDir(t)
	_, recipient := keyPair(t, base)
	wrongIdentity, _ := namedKeyPair(t, base, "other.key")
	repo := "file://" + repoDir(t, base)

	primary := newPrimary(t, base, pgward+" --repo "+repo+" --recipient "+recipient+" wal-push %p")
	primary.start()
	restoreDir := filepath.Join(base, "restore")
	must(t, base, nil, filepath.Join(pgBinDir, "pg_basebackup"), append(primary.connArgs(), "-D", restoreDir, "-X", "none", "-c", "fast")...)
	primary.psql("CREATE TABLE t AS SELECT generate_series(1, 1000) AS x")
	primary.switchAndWaitArchived(time.Minute)

	restored := restoreCluster(t, base, restoreDir, pgward+" --repo "+repo+" --identity-file "+wrongIdentity+" wal-fetch %f %p")
	r := run(t, base, nil, filepath.Join(pgBinDir, "pg_ctl"), "-D", restoreDir, "-l", restored.logFile(), "-w", "-t", "60", "start")
	t.Cleanup(func() { restored.stop("immediate") })
	if r.code == 0 {
		waitFor(t, time.Minute, "the server to stop", func() (bool, error) { return !restored.running(), nil })
	}
	log, _ := os.ReadFile(restored.logFile())
	for _, want := range []string{"encrypted to a different key", "exit code 255"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("server log does not mention %q:\n%s", want, tail(string(log), 20))
		}
	}
	if strings.Contains(string(log), "archive recovery complete") || strings.Contains(string(log), "selected new timeline") {
		t.Fatalf("the server promoted although WAL could not be decrypted:\n%s", tail(string(log), 20))
	}
}

// MinIO stopped mid-archiving: wal-push fails (PostgreSQL keeps the
// segment and retries), wal-fetch exits 255; when MinIO is back every
// segment is archived and none is missing.
func TestS3OutageLosesNothing(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	cfg := writeConfig(t, base, "pgward.yaml", "repo: s3://"+bucket+"/pg\nrecipient: "+recipient+"\nidentity-file: "+identity+"\n")

	primary := newPrimary(t, base, pgward+" --config "+cfg+" wal-push %p", "archive_timeout = 0")
	primary.env = srv.Env()
	primary.start()
	primary.psql("CREATE TABLE t (x int)")
	first := primary.switchAndWaitArchived(time.Minute)

	srv.Stop(t)
	primary.psql("INSERT INTO t SELECT generate_series(1, 100000)")
	during := primary.psql("SELECT pg_walfile_name(pg_switch_wal())")
	waitFor(t, 2*time.Minute, "archive_command to fail while MinIO is down", func() (bool, error) {
		return primary.psql("SELECT failed_count > 0 AND last_failed_wal = '"+during+"' FROM pg_stat_archiver") == "t", nil
	})
	log, _ := os.ReadFile(primary.logFile())
	if !strings.Contains(string(log), "cannot reach S3 endpoint "+srv.Endpoint) {
		t.Errorf("the server log does not explain the failure:\n%s", tail(string(log), 10))
	}
	fetch := run(t, base, srv.Env(), pgward, "--config", cfg, "wal-fetch", first, filepath.Join(base, "fetched"))
	if fetch.code != 255 || !strings.Contains(fetch.stderr, "cannot reach S3 endpoint") {
		t.Errorf("wal-fetch with MinIO down: exit %d, %q; want 255 and 'cannot reach S3 endpoint'", fetch.code, fetch.stderr)
	}
	if _, err := os.Stat(filepath.Join(base, "fetched")); !os.IsNotExist(err) {
		t.Errorf("wal-fetch left a file behind: %v", err)
	}

	srv.Restart(t)
	last := primary.switchAndWaitArchived(2 * time.Minute)
	archived := listWAL(t, srv, bucket, "pg/main/wal/")
	want := map[string]bool{}
	for _, s := range archived {
		want[s] = true
	}
	for seg := first; seg <= last; seg = nextSegment(seg) {
		if !want[seg] {
			t.Errorf("segment %s is missing from the repository after the outage (have %v)", seg, archived)
		}
	}
}

func nextSegment(name string) string {
	// 16 MiB segments: the last 8 hex digits run to 0xFF.
	var tli, log, seg uint32
	for i, p := range []*uint32{&tli, &log, &seg} {
		for _, c := range name[i*8 : i*8+8] {
			*p = *p<<4 | uint32(strings.IndexRune("0123456789ABCDEF", c))
		}
	}
	if seg++; seg == 0x100 {
		seg, log = 0, log+1
	}
	return strings.ToUpper(strings.Join([]string{hex8(tli), hex8(log), hex8(seg)}, ""))
}

func hex8(v uint32) string {
	const digits = "0123456789ABCDEF"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xF]
		v >>= 4
	}
	return string(b)
}

// kill -9 at random moments of wal-push: the repository holds either no
// object or a complete one, a retry always succeeds, and the stored
// segment is byte-identical to the original.
func TestWalPushKilledAtRandomMoments(t *testing.T) {
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	repo := "file://" + repoDir(t, base)
	primary := newPrimary(t, base, "/bin/true")
	primary.start()
	primary.psql("CREATE TABLE t AS SELECT generate_series(1, 200000) AS x")
	seg := primary.psql("SELECT pg_walfile_name(pg_switch_wal())")
	segPath := filepath.Join(primary.dir, "pg_wal", seg)
	orig, err := os.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(base, "fetched")
	stored := false // the repository held the whole segment before this round's push
	for i := range 15 {
		cmd := command(t.Context(), base, nil, pgward, "--repo", repo, "--recipient", recipient, "wal-push", segPath)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A random moment inside the push, which takes tens of ms: fault
		// injection, not synchronisation.
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()

		r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "wal-fetch", "--prefetch", "0", seg, dest)
		switch {
		case r.code == 1 && !stored: // not stored yet: fine
		case r.code == 255 && !stored && strings.Contains(r.stderr, "no cluster.json"):
			// Killed before even cluster.json was written: then no segment
			// may be there either (it is written after cluster.json).
			if objs, _ := filepath.Glob(filepath.Join(base, "repo", "main", "wal", seg+"*")); len(objs) > 0 {
				t.Fatalf("round %d: %v stored without cluster.json", i, objs)
			}
		case r.code == 0:
			got, _ := os.ReadFile(dest)
			if !bytes.Equal(got, orig) {
				t.Fatalf("round %d: the stored segment differs from the original after kill -9", i)
			}
			os.Remove(dest)
		default:
			t.Fatalf("round %d (segment stored before: %v): after kill -9 the repository holds a damaged object, or lost one: exit %d: %s", i, stored, r.code, r.stderr)
		}
		if r := run(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "wal-push", segPath); r.code != 0 {
			t.Fatalf("round %d: retry after kill -9 failed: exit %d: %s", i, r.code, r.stderr)
		}
		// Start the next round from an empty repository half of the time,
		// so kills land in first pushes as well as in re-pushes.
		stored = true
		if i%2 == 0 {
			os.RemoveAll(filepath.Join(base, "repo"))
			repoDir(t, base)
			stored = false
		}
	}

	// archive_command here stores nothing: a backup cannot get its WAL,
	// says so when --wal-timeout runs out, and leaves no backup.json.
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port)
	r := run(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast", "--wal-timeout", "3s")
	if r.code == 0 || !strings.Contains(r.stderr, "did not reach the repository within 3s") || !strings.Contains(r.stderr, "is archive_command (pgward wal-push) or pgward stream running") {
		t.Errorf("backup without its WAL: exit %d, %s", r.code, r.stderr)
	}
	if infos, _ := filepath.Glob(filepath.Join(base, "repo", "main", "basebackups", "*", "backup.json")); len(infos) != 0 {
		t.Errorf("a backup without its WAL was recorded: %v", infos)
	}
}
