//go:build e2e && bench

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestBench measures the real binary as PostgreSQL runs it, one process
// per segment, on real WAL from pgbench, beside pgBackRest on the same
// segments. Run with `make bench`; it prints a table.
func TestBench(t *testing.T) {
	n := 64
	if v, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_SEGMENTS")); err == nil && v > 0 {
		n = v
	}
	base := testDir(t)
	segs, pg := generateSegments(t, base, n)
	var segBytes int64
	for _, s := range segs {
		fi, _ := os.Stat(s)
		segBytes += fi.Size()
	}
	identity, recipient := keyPair(t, base)
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		// Without pgBackRest's stanza to create, the server is no longer
		// needed: stop it so its checkpoint does not compete for the disk.
		pg.stop("fast")
	}

	// The seal pipeline alone, on a real segment.
	sealBench := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchtime", "30x", "../seal")
	sealBench.Env = append(os.Environ(), "PGWARD_BENCH_SEGMENT="+segs[len(segs)/2])
	sealOut, err := sealBench.CombinedOutput()
	if err != nil {
		t.Fatalf("seal benchmarks: %v\n%s", err, sealOut)
	}

	type row struct {
		path, repo string
		rate       float64
		rssKB      int64
		note       string
	}
	var rows []row
	add := func(path, repo string, r rate, note string) {
		rows = append(rows, row{path, repo, r.perSecond(len(segs)), r.maxRSS, note})
	}

	// pgward into a file repository.
	fileRepo := "file://" + repoDir(t, base)
	push := []string{"--repo", fileRepo, "--recipient", recipient}
	fetch := []string{"--repo", fileRepo, "--identity-file", identity}
	add("wal-push", "file", timeEach(t, segs, func(s string) []string { return append(push, "wal-push", s) }), "")
	repoBytes := dirBytes(t, filepath.Join(base, "repo", "main", "wal"))
	add("wal-fetch, no prefetch", "file", fetchEach(t, base, segs, append(fetch, "wal-fetch", "--prefetch", "0")), "")
	add("wal-fetch, prefetch 8", "file", fetchEach(t, base, segs, append(fetch, "wal-fetch", "--prefetch", "8")), "")

	// The same, signed: what authenticity costs per segment.
	signingKey := filepath.Join(base, "signing.key")
	signer := strings.TrimSpace(must(t, base, nil, pgward, "keys", "generate", "--signing", "--output", signingKey))
	signedDir := filepath.Join(base, "signed")
	os.Mkdir(signedDir, 0o755)
	own(t, signedDir)
	signedRepo := "file://" + repoDir(t, signedDir)
	signedPush := []string{"--repo", signedRepo, "--recipient", recipient, "--signing-key-file", signingKey}
	signedFetch := []string{"--repo", signedRepo, "--identity-file", identity, "--trusted-signer", signer}
	add("wal-push, signed", "file", timeEach(t, segs, func(s string) []string { return append(signedPush, "wal-push", s) }), "")
	add("wal-fetch, signed, no pref.", "file", fetchEach(t, base, segs, append(signedFetch, "wal-fetch", "--prefetch", "0")), "")
	add("wal-fetch, signed, pref. 8", "file", fetchEach(t, base, segs, append(signedFetch, "wal-fetch", "--prefetch", "8")), "")

	// A backlog of .ready files after an outage: the archiver calls one
	// file after another, as PostgreSQL does.
	backlogRepo := "file://" + repoDir(t, mkOwnedDir(t, filepath.Join(base, "backlog-pgward")))
	add("wal-push, backlog", "file", pushBacklog(t, filepath.Join(base, "backlog-pgward"), segs, nil, pgward, func(p string) []string {
		return []string{"--repo", backlogRepo, "--recipient", recipient, "--signing-key-file", signingKey, "wal-push", p}
	}), "64 .ready at once, signed")
	aheadRepo := "file://" + repoDir(t, mkOwnedDir(t, filepath.Join(base, "backlog-ahead")))
	add("wal-push, backlog, ahead 16", "file", pushBacklog(t, filepath.Join(base, "backlog-ahead"), segs, nil, pgward, func(p string) []string {
		return []string{"--repo", aheadRepo, "--recipient", recipient, "--signing-key-file", signingKey, "wal-push", "--push-ahead", "16", p}
	}), "--push-ahead 16 --push-jobs 2")

	// pgward into MinIO.
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	s3Push := []string{"--repo", "s3://" + bucket + "/bench", "--recipient", recipient}
	s3Fetch := []string{"--repo", "s3://" + bucket + "/bench", "--identity-file", identity}
	withEnv := srv.Env()
	add("wal-push", "MinIO", timeEachEnv(t, segs, withEnv, func(s string) []string { return append(s3Push, "wal-push", s) }), "")
	add("wal-fetch, no prefetch", "MinIO", fetchEachEnv(t, base, segs, withEnv, append(s3Fetch, "wal-fetch", "--prefetch", "0")), "")
	add("wal-fetch, prefetch 8", "MinIO", fetchEachEnv(t, base, segs, withEnv, append(s3Fetch, "wal-fetch", "--prefetch", "8")), "")

	// pgBackRest on the same segments, same machine, file repository, zstd
	// level 1 and encryption like pgward.
	var pgbrPush, pgbrGet, pgbrBacklog rate
	pgbr, err := exec.LookPath("pgbackrest")
	if err == nil {
		conf := pgbackrestConf(t, base, pg)
		must(t, base, nil, pgbr, "--config="+conf, "--stanza=bench", "stanza-create")
		// The backlog goes to a repository of its own: pushing WAL it
		// already holds would only compare checksums.
		backlogConf := pgbackrestConf(t, mkOwnedDir(t, filepath.Join(base, "backlog-pgbr-repo")), pg)
		must(t, base, nil, pgbr, "--config="+backlogConf, "--stanza=bench", "stanza-create")
		pg.stop("fast")
		pgbrPush = timeEachCmd(t, segs, nil, pgbr, func(s string) []string {
			return []string{"--config=" + conf, "--stanza=bench", "archive-push", s}
		})
		pgbrGet = fetchEachCmd(t, base, segs, nil, pgbr, []string{"--config=" + conf, "--stanza=bench", "archive-get"})
		add("pgBackRest archive-push", "file", pgbrPush, "zst-1, aes-256-cbc")
		mkOwnedDir(t, filepath.Join(base, "backlog-pgbr", "global"))
		control, err := os.ReadFile(filepath.Join(pg.dir, "global", "pg_control"))
		if err != nil {
			t.Fatal(err)
		}
		writeConfig(t, filepath.Join(base, "backlog-pgbr", "global"), "pg_control", string(control))
		pgbrBacklog = pushBacklog(t, filepath.Join(base, "backlog-pgbr"), segs, nil, pgbr, func(p string) []string {
			// pgBackRest wants the WAL inside pg1-path, with its pg_control.
			return []string{"--config=" + backlogConf, "--stanza=bench", "--pg1-path=" + filepath.Dir(filepath.Dir(p)), "--archive-async", "--process-max=2", "archive-push", p}
		})
		add("pgBackRest archive-push, backlog", "file", pgbrBacklog, "async, process-max 2")
		add("pgBackRest archive-get", "file", pgbrGet, "")
	} else {
		t.Log("pgbackrest not installed: no comparison (apt-get install pgbackrest)")
	}

	if pgbrPush.elapsed > 0 {
		rowOf := func(path, repo string) row {
			for _, r := range rows {
				if r.path == path && r.repo == repo {
					return r
				}
			}
			t.Fatalf("no bench row %s %s", path, repo)
			return row{}
		}
		n := len(segs)
		for _, c := range []struct {
			path, row, refName, target string
			ref                        rate
		}{
			{"wal-push, steady", "wal-push", "archive-push", "≥ 2×", pgbrPush},
			{"wal-push, steady, signed", "wal-push, signed", "archive-push", "≥ 2×", pgbrPush},
			{"wal-push, backlog of 64, signed", "wal-push, backlog", "async, process-max 2", "≥ 1.5×", pgbrBacklog},
			{"wal-push, backlog, --push-ahead 16", "wal-push, backlog, ahead 16", "async, process-max 2", "≥ 1.5×", pgbrBacklog},
			{"wal-fetch, prefetch 8", "wal-fetch, prefetch 8", "archive-get", "≥ 2×", pgbrGet},
			{"wal-fetch, signed, prefetch 8", "wal-fetch, signed, pref. 8", "archive-get", "≥ 2×", pgbrGet},
			{"wal-fetch, no prefetch", "wal-fetch, no prefetch", "archive-get", "", pgbrGet},
		} {
			r := rowOf(c.row, "file")
			addSummary(pathResult{path: c.path, unit: "seg/s", pgward: r.rate, ref: c.ref.perSecond(n), refName: c.refName,
				higherBetter: true, rssKB: r.rssKB, target: c.target})
		}
	}

	var b strings.Builder
	fmt.Fprintf(&b, "\npgward bench: %d real segments of %d MiB from pgbench, one process per segment\n\n", len(segs), segBytes/int64(len(segs))>>20)
	fmt.Fprintf(&b, "%-28s %-6s %10s %12s %10s  %s\n", "path", "repo", "seg/s", "vs pgBackRest", "peak RSS", "")
	for _, r := range rows {
		ratio := ""
		switch {
		case strings.HasPrefix(r.path, "wal-push, backlog") && pgbrBacklog.elapsed > 0:
			ratio = fmt.Sprintf("%.2fx", r.rate/pgbrBacklog.perSecond(len(segs)))
		case strings.HasPrefix(r.path, "wal-push") && pgbrPush.elapsed > 0:
			ratio = fmt.Sprintf("%.2fx", r.rate/pgbrPush.perSecond(len(segs)))
		case strings.HasPrefix(r.path, "wal-fetch") && pgbrGet.elapsed > 0:
			ratio = fmt.Sprintf("%.2fx", r.rate/pgbrGet.perSecond(len(segs)))
		}
		fmt.Fprintf(&b, "%-28s %-6s %10.1f %12s %7d MiB  %s\n", r.path, r.repo, r.rate, ratio, r.rssKB>>10, r.note)
	}
	fmt.Fprintf(&b, "\ncompressed+encrypted size: %.1f%% of the WAL (ratio %.1fx)\n", 100*float64(repoBytes)/float64(segBytes), float64(segBytes)/float64(repoBytes))
	fmt.Fprintf(&b, "\nseal pipeline on one real segment (Go benchmark):\n")
	for _, line := range strings.Split(string(sealOut), "\n") {
		if strings.HasPrefix(line, "Benchmark") {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	fmt.Print(b.String())
}

// generateSegments runs pgbench until n segments beyond the initial load
// are complete and copies them out.
func generateSegments(t *testing.T, base string, n int) ([]string, *cluster) {
	t.Helper()
	// Checkpoint settings stay at PostgreSQL's defaults: the share of
	// full-page images, and so the compression ratio, is a default server's.
	pg := newPrimary(t, base, "/bin/true", fmt.Sprintf("wal_keep_size = %dMB", (n+8)*16))
	pg.start()
	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(pg.connArgs(), "-i", "-s", "20", "-q", "postgres")...)
	pg.psql("CHECKPOINT")
	first := pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
	segNo := func(name string) int64 { v, _ := strconv.ParseInt(name[16:], 16, 64); return v }
	for {
		must(t, base, nil, pgbench, append(pg.connArgs(), "-c", "4", "-j", "2", "-T", "5", "-n", "postgres")...)
		cur := pg.psql("SELECT pg_walfile_name(pg_current_wal_lsn())")
		if segNo(cur)-segNo(first) > int64(n) {
			break
		}
	}
	dir := filepath.Join(base, "segments")
	os.Mkdir(dir, 0o755)
	own(t, dir)
	var segs []string
	for i := int64(1); i <= int64(n); i++ {
		name := first[:16] + fmt.Sprintf("%08X", segNo(first)+i)
		data, err := os.ReadFile(filepath.Join(pg.dir, "pg_wal", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		own(t, p)
		segs = append(segs, p)
	}
	return segs, pg
}

type rate struct {
	elapsed time.Duration
	maxRSS  int64 // KiB
}

func (r rate) perSecond(n int) float64 { return float64(n) / r.elapsed.Seconds() }

func timeEach(t *testing.T, segs []string, args func(string) []string) rate {
	return timeEachEnv(t, segs, nil, args)
}

func timeEachEnv(t *testing.T, segs []string, env []string, args func(string) []string) rate {
	return timeEachCmd(t, segs, env, pgward, args)
}

func timeEachCmd(t *testing.T, segs []string, env []string, bin string, args func(string) []string) rate {
	t.Helper()
	var r rate
	start := time.Now()
	for _, s := range segs {
		r.maxRSS = max(r.maxRSS, runTimed(t, env, bin, args(s)...))
	}
	r.elapsed = time.Since(start)
	return r
}

func fetchEach(t *testing.T, base string, segs []string, args []string) rate {
	return fetchEachEnv(t, base, segs, nil, args)
}

func fetchEachEnv(t *testing.T, base string, segs []string, env []string, args []string) rate {
	return fetchEachCmd(t, base, segs, env, pgward, args)
}

// fetchEachCmd fetches every segment in order into a fresh pg_wal-like
// directory, removing each after it arrives, as recovery does.
func fetchEachCmd(t *testing.T, base string, segs []string, env []string, bin string, args []string) rate {
	t.Helper()
	walDir, err := os.MkdirTemp(base, "pg_wal-")
	if err != nil {
		t.Fatal(err)
	}
	own(t, walDir)
	dest := filepath.Join(walDir, "RECOVERYXLOG")
	var r rate
	start := time.Now()
	for _, s := range segs {
		r.maxRSS = max(r.maxRSS, runTimed(t, env, bin, append(args, filepath.Base(s), dest)...))
		if err := os.Remove(dest); err != nil {
			t.Fatalf("%s did not write %s: %v", bin, filepath.Base(s), err)
		}
	}
	r.elapsed = time.Since(start)
	return r
}

// runTimed runs one command that must succeed and returns its peak RSS in
// KiB, measured by /usr/bin/time: the rusage of a child forked from this
// (large) test process would count the parent's pages before exec.
func runTimed(t *testing.T, env []string, bin string, args ...string) int64 {
	t.Helper()
	rss, _ := runTimedOutput(t, env, bin, args...)
	return rss
}

// runTimedOutput is runTimed that also returns the command's output.
func runTimedOutput(t *testing.T, env []string, bin string, args ...string) (int64, string) {
	t.Helper()
	m := runMeasured(t, env, bin, args...)
	return m.rssKB, m.out
}

func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

// pgbackrestConf writes a pgBackRest configuration for pg with a posix
// repository in base, zstd level 1 and encryption, as pgward is compared.
func pgbackrestConf(t *testing.T, base string, pg *cluster) string {
	t.Helper()
	return writeConfig(t, base, "pgbackrest.conf", fmt.Sprintf(`[global]
repo1-path=%[1]s/pgbr-repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench-only-passphrase
compress-type=zst
compress-level=1
process-max=2
log-level-console=warn
log-level-file=off
lock-path=%[1]s/pgbr-lock
spool-path=%[1]s/pgbr-spool
[bench]
pg1-path=%[2]s
pg1-socket-path=%[3]s
pg1-port=%[4]d
pg1-user=postgres
`, base, pg.dir, pg.sock, pg.port))
}

// benchScale is the pgbench scale of the database benches: 70 (about
// 1 GiB), or PGWARD_BENCH_SCALE.
func benchScale() int {
	if v, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_SCALE")); err == nil && v > 0 {
		return v
	}
	return 70
}

// mkOwnedDir creates dir for the postgres user and returns it.
func mkOwnedDir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	own(t, dir)
	return dir
}

// pushBacklog lays the segments out in dir/pg_wal with a .ready file each,
// as a server leaves them after an archive outage, then archives them the
// way PostgreSQL's archiver does: one command per file, oldest first,
// marking each .done when it succeeds.
func pushBacklog(t *testing.T, dir string, segs []string, env []string, bin string, args func(path string) []string) rate {
	t.Helper()
	walDir := mkOwnedDir(t, filepath.Join(dir, "pg_wal"))
	status := mkOwnedDir(t, filepath.Join(walDir, "archive_status"))
	for _, s := range segs {
		name := filepath.Base(s)
		if err := os.Link(s, filepath.Join(walDir, name)); err != nil {
			t.Fatal(err)
		}
		writeConfig(t, status, name+".ready", "")
	}
	var r rate
	start := time.Now()
	for _, s := range segs {
		name := filepath.Base(s)
		r.maxRSS = max(r.maxRSS, runTimed(t, env, bin, args(filepath.Join(walDir, name))...))
		if err := os.Rename(filepath.Join(status, name+".ready"), filepath.Join(status, name+".done")); err != nil {
			t.Fatal(err)
		}
	}
	r.elapsed = time.Since(start)
	return r
}
