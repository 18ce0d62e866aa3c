//go:build e2e && bench

package e2e

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestBenchRestore measures restoring a base backup of about 1 GiB plus
// about 1 GiB of WAL replay, until the server is promoted: pgward with
// and without prefetch, beside pgBackRest restoring the same data from a
// posix repository.
func TestBenchRestore(t *testing.T) {
	scale := benchScale()
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	repo := "file://" + repoDir(t, base)
	pgbr := filepath.Join(base, "pgbackrest.conf")
	pg := newPrimary(t, base, "/bin/true", "max_wal_senders = 10", "max_wal_size = 4GB")
	pgbackrestConf(t, base, pg)
	pg.appendConf(fmt.Sprintf("archive_command = '%s --repo %s --recipient %s wal-push %%p && pgbackrest --config=%s --stanza=bench archive-push %%p'", pgward, repo, recipient, pgbr))
	pg.start()
	must(t, base, nil, "pgbackrest", "--config="+pgbr, "--stanza=bench", "stanza-create")
	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(pg.connArgs(), "-i", "-s", strconv.Itoa(scale), "-q", "postgres")...)
	source := fmt.Sprintf("host=%s port=%d user=postgres", pg.sock, pg.port)
	pg.psql("CHECKPOINT")
	stopSwitching := pg.keepSwitching() // close segments while the backups wait for WAL
	must(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast")
	must(t, base, nil, "pgbackrest", "--config="+pgbr, "--stanza=bench", "--type=full", "--start-fast", "backup")
	stopSwitching()
	// About 1 GiB of WAL to replay.
	walStart := currentLSN(t, pg)
	for currentLSN(t, pg)-walStart < 1<<30 {
		must(t, base, nil, pgbench, append(pg.connArgs(), "-c", "4", "-j", "2", "-T", "10", "-n", "postgres")...)
	}
	walBytes := currentLSN(t, pg) - walStart
	want := pg.psql("SELECT count(*) FROM pgbench_history")
	pg.switchAndWaitArchived(5 * time.Minute)
	pg.stop("fast")

	type row struct {
		what string
		secs float64
	}
	var rows []row
	check := func(dir string, port int) {
		c := &cluster{t: t, dir: dir, port: port, sock: base}
		if got := c.psql("SELECT count(*) FROM pgbench_history"); got != want {
			t.Errorf("%s: %s pgbench_history rows, want %s", dir, got, want)
		}
		c.stop("immediate")
	}
	for _, prefetch := range []string{"16", "0"} {
		dir := filepath.Join(base, "pgward-"+prefetch)
		port := miniotest.FreePort(t)
		begun := time.Now()
		if r := runWithin(t, 35*time.Minute, base, nil, pgward, "--repo", repo, "--identity-file", identity, "restore", "--pgdata", dir, "--latest",
			"--prefetch", prefetch, "--start", "--port", strconv.Itoa(port), "--start-timeout", "30m"); r.code != 0 {
			t.Fatalf("pgward restore: exit %d: %s", r.code, r.stderr)
		}
		rows = append(rows, row{"pgward restore, prefetch " + prefetch, time.Since(begun).Seconds()})
		check(dir, port)
	}
	dir := filepath.Join(base, "pgbackrest-restore")
	port := miniotest.FreePort(t)
	begun := time.Now()
	must(t, base, nil, "pgbackrest", "--config="+pgbr, "--stanza=bench", "--pg1-path="+dir, "--type=default", "restore")
	c := &cluster{t: t, dir: dir, port: port, sock: base}
	c.appendConf("archive_mode = off")
	c.start()
	c.waitPromoted(30 * time.Minute)
	rows = append(rows, row{"pgBackRest restore (process-max 2)", time.Since(begun).Seconds()})
	check(dir, port)

	var b strings.Builder
	fmt.Fprintf(&b, "\npgward restore bench: pgbench scale %d backup + %.2f GiB of WAL replayed, until promoted\n\n", scale, float64(walBytes)/(1<<30))
	var pgbrSecs float64
	for _, r := range rows {
		if strings.HasPrefix(r.what, "pgBackRest") {
			pgbrSecs = r.secs
		}
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-36s %7.1f s   %.2fx pgBackRest's speed\n", r.what, r.secs, pgbrSecs/r.secs)
	}
	fmt.Print(b.String())
}
