//go:build e2e && bench

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

// measured is one timed run of a command: wall time, CPU and peak RSS.
type measured struct {
	secs, cpu float64
	rssKB     int64
	out       string
}

// runMeasured runs a command that must succeed under /usr/bin/time.
func runMeasured(t *testing.T, env []string, bin string, args ...string) measured {
	t.Helper()
	stats, err := os.CreateTemp("", "pgward-time-")
	if err != nil {
		t.Fatal(err)
	}
	stats.Close()
	defer os.Remove(stats.Name())
	own(t, stats.Name())
	begun := time.Now()
	cmd := command(t.Context(), filepath.Dir(pgward), env, "/usr/bin/time", append([]string{"-f", "%M %U %S", "-o", stats.Name(), bin}, args...)...)
	out, err := cmd.CombinedOutput()
	m := measured{secs: time.Since(begun).Seconds(), out: string(out)}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	b, _ := os.ReadFile(stats.Name())
	var user, sys float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d %f %f", &m.rssKB, &user, &sys); err != nil {
		t.Fatalf("/usr/bin/time output %q: %v", b, err)
	}
	m.cpu = user + sys
	return m
}

// benchScales are the pgbench scales of the backup and restore bench: the
// main database (PGWARD_BENCH_SCALE, default 50: 0.8 GiB) and a second one
// (PGWARD_BENCH_EXTRA_SCALE, default 200; 0 for none): 3.8 GiB in all, as
// TARGETS.md measures.
func benchScales() (main, extra int) {
	main, extra = 50, 200
	if v, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_SCALE")); err == nil && v > 0 {
		main = v
	}
	if v, err := strconv.Atoi(os.Getenv("PGWARD_BENCH_EXTRA_SCALE")); err == nil && v >= 0 {
		extra = v
	}
	return main, extra
}

// TestBenchBackupRestore times a base backup and its restore (until
// synced) with pgward and with pgBackRest (process-max 2, zstd 1,
// encrypted) on the same cluster, in the same run.
func TestBenchBackupRestore(t *testing.T) {
	if _, err := os.Stat("/usr/bin/pgbackrest"); err != nil {
		t.Skip("pgbackrest not installed (make bench installs it)")
	}
	mainScale, extraScale := benchScales()
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	signingKey := filepath.Join(base, "signing.key")
	signer := strings.TrimSpace(must(t, base, nil, pgward, "keys", "generate", "--signing", "--output", signingKey))
	repo := "file://" + repoDir(t, base)
	pgbr := filepath.Join(base, "pgbackrest.conf")
	pg := newPrimary(t, base, "/bin/true", "max_wal_senders = 10", "max_wal_size = 8GB", "checkpoint_timeout = 30min")
	pgbackrestConf(t, base, pg)
	pg.appendConf(fmt.Sprintf("archive_command = '%s --repo %s --recipient %s --signing-key-file %s wal-push %%p && pgbackrest --config=%s --stanza=bench archive-push %%p'",
		pgward, repo, recipient, signingKey, pgbr))
	pg.start()
	must(t, base, nil, "pgbackrest", "--config="+pgbr, "--stanza=bench", "stanza-create")
	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(pg.connArgs(), "-i", "-s", strconv.Itoa(mainScale), "-q", "postgres")...)
	if extraScale > 0 {
		pg.psql("CREATE DATABASE big")
		must(t, base, nil, pgbench, append(pg.connArgs(), "-i", "-s", strconv.Itoa(extraScale), "-q", "big")...)
	}
	pg.psql("CHECKPOINT")
	dbBytes, _ := strconv.ParseInt(pg.psql("SELECT sum(pg_database_size(oid)) FROM pg_database"), 10, 64)
	want := pg.psql("SELECT sum(abalance) FROM pgbench_accounts")
	source := fmt.Sprintf("host=%s port=%d user=postgres", pg.sock, pg.port)
	stopSwitching := pg.keepSwitching() // close segments while the backups wait for WAL

	type row struct {
		what string
		m    measured
		data float64 // pgward: seconds of the data phase (BASE_BACKUP to the last part stored)
	}
	var rows []row
	var pgwBackup, pgbrBackup, pgwRestore, pgbrRestore measured
	for range 2 { // the first round warms the page cache for both
		pgwBackup = runMeasured(t, nil, pgward, "--repo", repo, "--recipient", recipient, "--signing-key-file", signingKey, "--log-level", "info",
			"backup", "--source", source, "--checkpoint", "fast")
		pgbrBackup = runMeasured(t, nil, "pgbackrest", "--config="+pgbr, "--stanza=bench", "--type=full", "--start-fast", "backup")
	}
	stopSwitching()
	pg.switchAndWaitArchived(5 * time.Minute)
	pg.stop("fast")
	dataPhase := func(out string) float64 {
		var a, b time.Time
		for _, line := range strings.Split(out, "\n") {
			ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
			tm, err := time.Parse(time.RFC3339Nano, ts)
			switch {
			case err != nil:
			case strings.Contains(line, `msg="base backup started"`):
				a = tm
			case strings.Contains(line, `msg="base backup data stored"`):
				b = tm
			}
		}
		if a.IsZero() || b.IsZero() {
			return 0
		}
		return b.Sub(a).Seconds()
	}
	rows = append(rows, row{"pgward backup", pgwBackup, dataPhase(pgwBackup.out)}, row{"pgBackRest backup", pgbrBackup, 0})

	check := func(dir string) {
		port := miniotest.FreePort(t)
		c := &cluster{t: t, dir: dir, port: port, sock: base}
		c.appendConf("archive_mode = off", fmt.Sprintf("port = %d", port))
		c.start()
		c.waitPromoted(10 * time.Minute)
		if got := c.psql("SELECT sum(abalance) FROM pgbench_accounts"); got != want {
			t.Errorf("%s: sum(abalance) %s, want %s", dir, got, want)
		}
		c.stop("immediate")
		os.RemoveAll(dir)
	}
	for round := range 2 {
		pgwDir, pgbrDir := filepath.Join(base, "pgward-restore"), filepath.Join(base, "pgbackrest-restore")
		// Both end durable: pgward syncs the file system itself;
		// pgBackRest fsyncs each file. The sync after each makes sure.
		pgwRestore = runMeasured(t, nil, "/bin/sh", "-c", fmt.Sprintf("%s --repo %s --identity-file %s --trusted-signer %s restore --pgdata %s --latest --prefetch 0 && sync -f %s",
			pgward, repo, identity, signer, pgwDir, pgwDir))
		pgbrRestore = runMeasured(t, nil, "/bin/sh", "-c", fmt.Sprintf("pgbackrest --config=%s --stanza=bench --pg1-path=%s --type=default restore && sync -f %s", pgbr, pgbrDir, pgbrDir))
		if round == 1 {
			check(pgwDir)
			check(pgbrDir)
		} else {
			os.RemoveAll(pgwDir)
			os.RemoveAll(pgbrDir)
		}
	}
	rows = append(rows, row{"pgward restore, until synced", pgwRestore, 0}, row{"pgBackRest restore, until synced", pgbrRestore, 0})

	gib := float64(dbBytes) / (1 << 30)
	size := fmt.Sprintf("%.1f GiB", gib)
	addSummary(pathResult{path: "backup, " + size, unit: "s", pgward: pgwBackup.secs, ref: pgbrBackup.secs, refName: "process-max 2",
		cpu: pgwBackup.cpu, rssKB: pgwBackup.rssKB, target: "≥ 1.2×"})
	addSummary(pathResult{path: "restore until synced, " + size, unit: "s", pgward: pgwRestore.secs, ref: pgbrRestore.secs, refName: "process-max 2",
		cpu: pgwRestore.cpu, rssKB: pgwRestore.rssKB, target: "≥ 1.35×"})
	var b strings.Builder
	fmt.Fprintf(&b, "\nbackup and restore beside pgBackRest (process-max 2, zst 1, aes-256-cbc): pgbench scale %d + %d, %.2f GiB\n\n", mainScale, extraScale, gib)
	fmt.Fprintf(&b, "  %-34s %8s %9s %8s %10s %8s\n", "", "seconds", "MiB/s", "CPU s", "peak RSS", "ratio")
	for i, r := range rows {
		ratio := ""
		if i%2 == 0 {
			ratio = fmt.Sprintf("%.2fx", rows[i+1].m.secs/r.m.secs)
		}
		fmt.Fprintf(&b, "  %-34s %8.2f %9.0f %8.1f %7d MiB %8s\n", r.what, r.m.secs, float64(dbBytes)/(1<<20)/r.m.secs, r.m.cpu, r.m.rssKB>>10, ratio)
		if r.data > 0 {
			fmt.Fprintf(&b, "  %-34s %8.2f %9.0f\n", "  of which the data phase", r.data, float64(dbBytes)/(1<<20)/r.data)
		}
	}
	fmt.Print(b.String())
}
