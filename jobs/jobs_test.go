package jobs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
