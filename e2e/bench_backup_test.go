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

// TestBenchBackup measures pgward backup of a pgbench database of about
// 1 GiB (PGWARD_BENCH_SCALE, default 70) into a file repository and into
// MinIO, beside pg_basebackup -Ft -D - | zstd -1 on the same database.
func TestBenchBackup(t *testing.T) {
	scale := benchScale()
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	_, recipient := keyPair(t, base)
	fileRepo := "file://" + repoDir(t, base)
	s3Repo := "s3://" + bucket + "/bench"
	push := fmt.Sprintf("%[1]s --repo %[2]s --recipient %[3]s wal-push %%p && %[1]s --repo %[4]s --recipient %[3]s wal-push %%p", pgward, fileRepo, recipient, s3Repo)
	pg := newPrimary(t, base, push, "max_wal_senders = 10", "max_wal_size = 4GB")
	pg.env = srv.Env()
	pg.start()
	must(t, base, nil, filepath.Join(pgBinDir, "pgbench"), append(pg.connArgs(), "-i", "-s", strconv.Itoa(scale), "-q", "postgres")...)
	pg.psql("CHECKPOINT")
	dbBytes, _ := strconv.ParseInt(pg.psql("SELECT sum(pg_database_size(oid)) FROM pg_database"), 10, 64)

	defer pg.keepSwitching()()

	source := fmt.Sprintf("host=%s port=%d user=postgres", pg.sock, pg.port)
	type row struct {
		what     string
		secs     float64
		dataSecs float64 // from the start of BASE_BACKUP to the data stored (pgward's log)
		rssKB    int64
	}
	var rows []row
	logTime := func(out, msg string) time.Time {
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, `msg="`+msg+`"`) {
				if ts, _, ok := strings.Cut(strings.TrimPrefix(line, "time="), " "); ok {
					tm, _ := time.Parse(time.RFC3339Nano, ts)
					return tm
				}
			}
		}
		return time.Time{}
	}
	measure := func(what string, env []string, bin string, args ...string) {
		begun := time.Now()
		rss, out := runTimedOutput(t, env, bin, args...)
		r := row{what: what, secs: time.Since(begun).Seconds(), rssKB: rss}
		if a, b := logTime(out, "base backup started"), logTime(out, "base backup data stored"); !a.IsZero() && !b.IsZero() {
			r.dataSecs = b.Sub(a).Seconds()
		}
		rows = append(rows, r)
	}
	measure("pgward backup → file", nil, pgward, "--repo", fileRepo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast")
	measure("pgward backup → MinIO", srv.Env(), pgward, "--repo", s3Repo, "--recipient", recipient, "backup", "--source", source, "--checkpoint", "fast")
	out := filepath.Join(base, "pg_basebackup.tar.zst")
	measure("pg_basebackup -Ft | zstd -1", nil, "/bin/bash", "-o", "pipefail", "-c", fmt.Sprintf(
		"%s -h %s -p %d -U postgres -Ft -X none -c fast -D - | zstd -1 -q -T0 > %s", filepath.Join(pgBinDir, "pg_basebackup"), pg.sock, pg.port, out))
	fi, _ := os.Stat(out)

	var b strings.Builder
	fmt.Fprintf(&b, "\npgward backup bench: pgbench scale %d, %.2f GiB of databases\n\n", scale, float64(dbBytes)/(1<<30))
	fmt.Fprintf(&b, "  %-30s %8s %10s %16s %10s\n", "", "seconds", "MiB/s", "data phase MiB/s", "peak RSS")
	for _, r := range rows {
		data := "-"
		if r.dataSecs > 0 {
			data = fmt.Sprintf("%.0f", float64(dbBytes)/(1<<20)/r.dataSecs)
		}
		fmt.Fprintf(&b, "  %-30s %8.1f %10.0f %16s %7d MiB\n", r.what, r.secs, float64(dbBytes)/(1<<20)/r.secs, data, r.rssKB>>10)
	}
	fmt.Fprintf(&b, "  (pgward's seconds include the fast checkpoint and the wait for the backup's WAL; its data phase runs from BASE_BACKUP to the last part stored)\n")
	fmt.Fprintf(&b, "  pg_basebackup | zstd -1 output: %.0f MiB (not encrypted)\n", float64(fi.Size())/(1<<20))
	fmt.Print(b.String())
}
