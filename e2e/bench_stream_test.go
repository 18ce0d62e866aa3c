//go:build e2e && bench

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestBenchStream measures the sidecar beside pg_receivewal: how fast each
// catches up a backlog of WAL the slot held (the highest rate it
// sustains), and its lag under pgbench at full speed.
func TestBenchStream(t *testing.T) {
	base := testDir(t)
	_, recipient := keyPair(t, base)
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	pg := newPrimary(t, base, "/bin/true", "archive_mode = off", "max_wal_senders = 10", "max_wal_size = 4GB")
	pg.start()
	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(pg.connArgs(), "-i", "-s", "10", "-q", "postgres")...)

	slotLag := func(slot string) int64 {
		out, err := pg.tryPSQL("SELECT pg_current_wal_lsn() - restart_lsn FROM pg_replication_slots WHERE slot_name = '" + slot + "'")
		if err != nil || out == "" {
			return -1
		}
		v, _ := strconv.ParseFloat(out, 64)
		return int64(v)
	}
	createSlot := func(slot string) {
		pg.psql("SELECT pg_create_physical_replication_slot('" + slot + "', true)")
	}
	source := fmt.Sprintf("host=%s port=%d user=postgres", pg.sock, pg.port)
	fileRepo := "file://" + repoDir(t, base)

	// Catch-up: with the slot holding a backlog, how fast is it stored?
	type catchup struct {
		who   string
		bytes int64
		secs  float64
	}
	var catchups []catchup
	backlog := func(slot string) {
		createSlot(slot)
		must(t, base, nil, pgbench, append(pg.connArgs(), "-c", "4", "-j", "2", "-t", "50000", "-n", "postgres")...)
	}
	measure := func(who, slot string, start func() func()) {
		backlog(slot)
		lag := slotLag(slot)
		begun := time.Now()
		stop := start()
		waitFor(t, 10*time.Minute, who+" to catch up", func() (bool, error) { v := slotLag(slot); return v >= 0 && v < 16<<20, nil })
		catchups = append(catchups, catchup{who, lag, time.Since(begun).Seconds()})
		stop()
		pg.psql("SELECT pg_drop_replication_slot('" + slot + "')")
	}
	sidecarStarter := func(repo, spool string, env []string) func() func() {
		return func() func() {
			sc := startSidecar(t, base, env, "--repo", repo, "--recipient", recipient, "stream", "--source", source,
				"--slot", "bench", "--spool-dir", filepath.Join(base, spool), "--partial-interval", "1s", "--status-interval", "1s")
			return sc.stop
		}
	}
	receivewal := func(dir, slot string) func() func() {
		return func() func() {
			os.MkdirAll(filepath.Join(base, dir), 0o755)
			own(t, filepath.Join(base, dir))
			cmd := command(context.Background(), base, nil, filepath.Join(pgBinDir, "pg_receivewal"),
				"-h", pg.sock, "-p", strconv.Itoa(pg.port), "-U", "postgres", "-D", filepath.Join(base, dir), "-S", slot, "--no-loop", "-s", "1")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			return func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
		}
	}
	measure("pgward stream → file", "bench", sidecarStarter(fileRepo, "spool-file", nil))
	measure("pgward stream → MinIO", "bench", sidecarStarter("s3://"+bucket+"/bench", "spool-s3", srv.Env()))
	measure("pg_receivewal → local dir", "rw", receivewal("receivewal-1", "rw"))

	// Lag at full speed, both running on the same load.
	createSlot("bench")
	createSlot("rw")
	sc := startSidecar(t, base, nil, "--repo", fileRepo, "--recipient", recipient, "stream", "--source", source,
		"--slot", "bench", "--spool-dir", filepath.Join(base, "spool-lag"), "--partial-interval", "1s", "--status-interval", "1s")
	stopRW := receivewal("receivewal-2", "rw")()
	var samples sync.Map // who → []float64 bytes
	var secSamples sync.Map
	ctx, stopSampling := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for _, who := range []string{"bench", "rw"} {
				if v := slotLag(who); v >= 0 {
					old, _ := samples.LoadOrStore(who, []float64{})
					samples.Store(who, append(old.([]float64), float64(v)))
				}
			}
			out, _ := pg.tryPSQL("SELECT application_name, coalesce(extract(epoch FROM flush_lag), 0) FROM pg_stat_replication")
			for _, line := range strings.Split(out, "\n") {
				name, v, ok := strings.Cut(line, "|")
				if !ok {
					continue
				}
				f, _ := strconv.ParseFloat(v, 64)
				old, _ := secSamples.LoadOrStore(name, []float64{})
				secSamples.Store(name, append(old.([]float64), f))
			}
		}
	})
	walStart := currentLSN(t, pg)
	begun := time.Now()
	must(t, base, nil, pgbench, append(pg.connArgs(), "-c", "4", "-j", "2", "-T", "30", "-n", "postgres")...)
	elapsed := time.Since(begun)
	walBytes := currentLSN(t, pg) - walStart
	stopSampling()
	wg.Wait()
	sc.stop()
	stopRW()

	var b strings.Builder
	fmt.Fprintf(&b, "\npgward stream bench\n\ncatch-up of a backlog held by the slot (highest sustained rate):\n")
	for _, c := range catchups {
		fmt.Fprintf(&b, "  %-28s %6.0f MiB in %5.1f s = %6.1f MiB/s\n", c.who, float64(c.bytes)/(1<<20), c.secs, float64(c.bytes)/(1<<20)/c.secs)
	}
	fmt.Fprintf(&b, "\nlag under pgbench -c 4 -T 30 (%.1f MiB/s of WAL), sampled every 250 ms:\n", float64(walBytes)/(1<<20)/elapsed.Seconds())
	fmt.Fprintf(&b, "  %-28s %12s %12s %10s %10s\n", "", "median bytes", "max bytes", "median s", "max s")
	for _, who := range []struct{ slot, app, label string }{{"bench", "pgward", "pgward stream → file"}, {"rw", "pg_receivewal", "pg_receivewal"}} {
		bs, _ := samples.Load(who.slot)
		ss, _ := secSamples.Load(who.app)
		mb, xb := medianMax(bs)
		ms, xs := medianMax(ss)
		fmt.Fprintf(&b, "  %-28s %12.0f %12.0f %10.2f %10.2f\n", who.label, mb, xb, ms, xs)
	}
	fmt.Fprintf(&b, "  (pg_receivewal reports a segment flushed when it completes; pgward when it is stored, partial or whole)\n")
	fmt.Print(b.String())
}

func medianMax(v any) (float64, float64) {
	xs, _ := v.([]float64)
	if len(xs) == 0 {
		return 0, 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2], s[len(s)-1]
}
