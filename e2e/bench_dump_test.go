//go:build e2e && bench

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestBenchDump measures pgward dump of a pgbench database of about 1 GiB
// (PGWARD_BENCH_SCALE, default 70) into a file repository and into MinIO,
// beside pg_dump -Fc (its default compression) and pg_dump -Fc -Z0 | zstd -1
// to a local file.
func TestBenchDump(t *testing.T) {
	scale := benchScale()
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	_, recipient := keyPair(t, base)
	fileRepo := "file://" + repoDir(t, base)
	s3Repo := "s3://" + bucket + "/bench"
	pg := newPrimary(t, base, "/bin/true", "max_wal_size = 4GB")
	pg.start()
	pg.psql("CREATE DATABASE bench")
	must(t, base, nil, filepath.Join(pgBinDir, "pgbench"), append(pg.connArgs(), "-i", "-s", strconv.Itoa(scale), "-q", "bench")...)
	pg.psql("CHECKPOINT")
	dbBytes, _ := strconv.ParseInt(pg.psql("SELECT pg_database_size('bench')"), 10, 64)
	source := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", pg.sock, pg.port)

	type row struct {
		what   string
		secs   float64
		stored int64
		rssKB  int64
	}
	var rows []row
	measure := func(what string, env []string, stored func() int64, bin string, args ...string) {
		begun := time.Now()
		rss, _ := runTimedOutput(t, env, bin, args...)
		rows = append(rows, row{what: what, secs: time.Since(begun).Seconds(), rssKB: rss, stored: stored()})
	}
	dumpStored := func(repo string, env []string) func() int64 {
		return func() int64 {
			var dumps []struct {
				StoredBytes int64 `json:"stored_bytes"`
			}
			out := must(t, base, env, pgward, "--repo", repo, "dump", "list", "--database", "bench", "--json")
			if err := json.Unmarshal([]byte(out), &dumps); err != nil || len(dumps) == 0 || dumps[len(dumps)-1].StoredBytes <= 0 {
				t.Fatalf("dump list --json: %v: %s", err, out)
			}
			return dumps[len(dumps)-1].StoredBytes
		}
	}
	fileSize := func(p string) func() int64 {
		return func() int64 { fi, _ := os.Stat(p); return fi.Size() }
	}
	args := []string{"--recipient", recipient, "dump", "--source", source, "--database", "bench", "--no-globals"}
	measure("pgward dump → file", nil, dumpStored(fileRepo, nil), pgward, append([]string{"--repo", fileRepo}, args...)...)
	measure("pgward dump → MinIO", srv.Env(), dumpStored(s3Repo, srv.Env()), pgward, append([]string{"--repo", s3Repo}, args...)...)
	fc := filepath.Join(base, "bench.pgdump")
	measure("pg_dump -Fc → file", nil, fileSize(fc), filepath.Join(pgBinDir, "pg_dump"), "-h", pg.sock, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-Fc", "-f", fc, "bench")
	zs := filepath.Join(base, "bench.pgdump.zst")
	measure("pg_dump -Fc -Z0 | zstd -1", nil, fileSize(zs), "/bin/bash", "-o", "pipefail", "-c", fmt.Sprintf("%s -h %s -p %d -U postgres -Fc -Z0 bench | zstd -1 -q -T0 > %s",
		filepath.Join(pgBinDir, "pg_dump"), pg.sock, pg.port, zs))

	addSummary(pathResult{path: fmt.Sprintf("dump, %.1f GiB database", float64(dbBytes)/(1<<30)), unit: "s", pgward: rows[0].secs, ref: rows[2].secs,
		refName: "pg_dump -Fc", rssKB: rows[0].rssKB, target: "≥ 1.0×"})
	var b strings.Builder
	fmt.Fprintf(&b, "\npgward dump bench: pgbench scale %d, database of %.2f GiB\n\n", scale, float64(dbBytes)/(1<<30))
	fmt.Fprintf(&b, "  %-28s %8s %12s %12s %10s %10s\n", "", "seconds", "DB MiB/s", "stored MiB", "vs pg_dump", "peak RSS")
	ref := rows[2].secs
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-28s %8.1f %12.0f %12.1f %9.2fx %7d MiB\n", r.what, r.secs, float64(dbBytes)/(1<<20)/r.secs,
			float64(r.stored)/(1<<20), ref/r.secs, r.rssKB/1024)
	}
	t.Log(b.String())
}
