package jobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pgward/pgward/internal/schedule"
)

type notices struct{ failed, succeeded []string }

func (n *notices) Failed(_ context.Context, job string, err error) {
	n.failed = append(n.failed, job+": "+err.Error())
}
func (n *notices) Succeeded(_ context.Context, job, note string) {
	n.succeeded = append(n.succeeded, job+": "+note)
}

// A run's outcome lands in the metrics and the notices; a failure keeps
// the last success, and a textfile keeps what other runs wrote.
func TestOnceReportsAndTextfileKeeps(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	clock := t0
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	file := filepath.Join(t.TempDir(), "pgward.prom")

	run := func(job Job) {
		t.Helper()
		reg := prometheus.NewRegistry()
		var n notices
		r := &Runner{Metrics: NewMetrics(reg), Notify: &n, Now: now}
		r.Once(t.Context(), job)
		if err := WriteTextfile(file, reg); err != nil {
			t.Fatal(err)
		}
	}
	run(Job{Name: "backup", Run: func(context.Context) (Outcome, error) { return Outcome{Bytes: 1234, Note: "backup b1"}, nil }})
	run(Job{Name: "dump", Run: func(context.Context) (Outcome, error) {
		return Outcome{Bytes: 10, Items: []Item{{Name: "shop", Bytes: 7}, {Name: "blog", Err: errors.New("pg_dump failed")}}}, errors.New("1 of 2 failed")
	}})
	run(Job{Name: "backup", Run: func(context.Context) (Outcome, error) { return Outcome{}, errors.New("replica down") }})

	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	for _, want := range []string{
		`pgward_job_last_success_timestamp_seconds{job="backup"} 1.800000002e+09`, // the first run's, kept through the failure
		`pgward_job_last_bytes{job="backup"} 1234`,
		`pgward_job_last_ok{job="backup"} 0`,
		`pgward_scheduled_job_failures_total{job="backup"} 1`,
		`pgward_job_last_ok{job="dump"} 0`,
		`pgward_job_item_last_ok{item="shop",job="dump"} 1`,
		`pgward_job_item_last_bytes{item="shop",job="dump"} 7`,
		`pgward_job_item_last_ok{item="blog",job="dump"} 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("textfile lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, `pgward_job_item_last_success_timestamp_seconds{item="blog"`) {
		t.Error("a failed item has a last success")
	}
	// A file that is not one is replaced, and said so.
	os.WriteFile(file, []byte("not { metrics\n"), 0o644)
	reg := prometheus.NewRegistry()
	(&Runner{Metrics: NewMetrics(reg)}).Once(t.Context(), Job{Name: "prune", Run: func(context.Context) (Outcome, error) { return Outcome{}, nil }})
	if err := WriteTextfile(file, reg); err == nil || !strings.Contains(err.Error(), "did not parse, replaced") {
		t.Errorf("WriteTextfile over garbage: %v", err)
	}
	if data, _ := os.ReadFile(file); !strings.Contains(string(data), `pgward_job_last_ok{job="prune"} 1`) {
		t.Errorf("after replacing garbage:\n%s", data)
	}
}

func TestOnceShutdownIsNoVerdict(t *testing.T) {
	reg := prometheus.NewRegistry()
	var n notices
	r := &Runner{Metrics: NewMetrics(reg), Notify: &n}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r.Once(ctx, Job{Name: "backup", Run: func(ctx context.Context) (Outcome, error) { return Outcome{}, ctx.Err() }})
	if len(n.failed)+len(n.succeeded) != 0 {
		t.Errorf("a run stopped by shutdown was notified: %+v", n)
	}
	fams, _ := reg.Gather()
	for _, f := range fams {
		if len(f.Metric) > 0 {
			t.Errorf("a run stopped by shutdown set %s", f.GetName())
		}
	}
}

// A scheduled run starts only inside its window; one still going at the
// window's end is stopped (and fails), throttled, or let finish, as set;
// each is counted. The clock is simulated.
func TestScheduledRespectsTheWindow(t *testing.T) {
	window, err := schedule.ParseWindow("22:00-06:00", "UTC")
	if err != nil {
		t.Fatal(err)
	}
	day := func(hh int) func() time.Time {
		return func() time.Time { return time.Date(2026, 12, 2, hh, 0, 0, 0, time.UTC) }
	}
	// The window's end comes at once: the run then waits for its context.
	atOnce := func(_ time.Duration, f func()) func() bool { go f(); return func() bool { return true } }
	blocking := func(ctx context.Context) (Outcome, error) { <-ctx.Done(); return Outcome{}, ctx.Err() }

	reg := prometheus.NewRegistry()
	var n notices
	ran := 0
	r := &Runner{Metrics: NewMetrics(reg), Notify: &n, Now: day(12), AfterFunc: atOnce}
	r.Scheduled(t.Context(), Job{Name: "backup", Window: window, Run: func(context.Context) (Outcome, error) { ran++; return Outcome{}, nil }})
	if ran != 0 || testutil.ToFloat64(r.Metrics.skipped.WithLabelValues("backup")) != 1 {
		t.Errorf("at noon: ran %d times, skipped %v; want skipped", ran, testutil.ToFloat64(r.Metrics.skipped.WithLabelValues("backup")))
	}

	r.Now = day(23)
	r.Scheduled(t.Context(), Job{Name: "backup", Window: window, AtWindowEnd: Stop, Run: blocking})
	if len(n.failed) != 1 || !strings.Contains(n.failed[0], "stopped at the end of its window 22:00-06:00 UTC") {
		t.Errorf("stop at the window's end: notices %+v", n)
	}
	if testutil.ToFloat64(r.Metrics.overran.WithLabelValues("backup")) != 1 {
		t.Error("the overrun was not counted")
	}

	throttled := make(chan struct{})
	r.Scheduled(t.Context(), Job{Name: "dump", Window: window, AtWindowEnd: Throttle, Throttle: func() { close(throttled) },
		Run: func(context.Context) (Outcome, error) { <-throttled; return Outcome{}, nil }})
	if len(n.succeeded) != 1 || !strings.HasPrefix(n.succeeded[0], "dump") {
		t.Errorf("throttled run: notices %+v, want it to succeed", n)
	}
}

// A scheduled time missed while the sidecar was down is run once at start,
// counted as late; not when the job ran since, nor outside its window.
func TestCatchUpRunsMissedOnce(t *testing.T) {
	sched, _ := schedule.Parse("30 0 * * *", "UTC")
	window, _ := schedule.ParseWindow("00:00-06:00", "UTC")
	now := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		last    time.Time
		now     time.Time
		wantRun int
	}{
		{"missed", now.Add(-30 * time.Hour), now, 1},
		{"ran since", now.Add(-2 * time.Hour), now, 0},
		{"missed, but outside the window", now.Add(-30 * time.Hour), now.Add(6 * time.Hour), 0},
	} {
		reg := prometheus.NewRegistry()
		ran := 0
		r := &Runner{Metrics: NewMetrics(reg), Now: func() time.Time { return tc.now }}
		r.catchUp(t.Context(), Job{Name: "backup", Schedule: sched, Window: window,
			LastRun: func(context.Context) (time.Time, error) { return tc.last, nil },
			Run:     func(context.Context) (Outcome, error) { ran++; return Outcome{}, nil }})
		if ran != tc.wantRun || testutil.ToFloat64(r.Metrics.late.WithLabelValues("backup")) != float64(tc.wantRun) {
			t.Errorf("%s: ran %d, late %v; want %d", tc.name, ran, testutil.ToFloat64(r.Metrics.late.WithLabelValues("backup")), tc.wantRun)
		}
	}
}

// Writers of one textfile at once lose nothing.
func TestTextfileConcurrentWriters(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pgward.prom")
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			reg := prometheus.NewRegistry()
			m := NewMetrics(prometheus.WrapRegistererWith(prometheus.Labels{"cluster": fmt.Sprintf("c%02d", i)}, reg))
			(&Runner{Metrics: m}).Once(t.Context(), Job{Name: "verify", Run: func(context.Context) (Outcome, error) { return Outcome{}, nil }})
			if err := WriteTextfile(file, reg); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	data, _ := os.ReadFile(file)
	if n := strings.Count(string(data), `pgward_job_last_ok{cluster="c`); n != 20 {
		t.Errorf("%d of 20 clusters' series in the file:\n%s", n, data)
	}
}
