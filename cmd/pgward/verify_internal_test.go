package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// verify --json counts what it read and names each damaged object; the
// exit status says there was one.
func TestVerifyJSON(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	for seg := uint64(3); seg <= 4; seg++ {
		src := fakeSegment(t, t.TempDir(), seg, sysID, byte(seg))
		pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	}
	type result struct {
		Cluster                               string
		Checked, Total, Signed, Unsigned, Bad int
		Bytes                                 int64 `json:"stored_bytes_read"`
		Findings                              []struct{ Key, Error string }
	}
	read := func(code int) result {
		t.Helper()
		r := pgward(t, "--repo", repoURL, "verify", "--json")
		if r.code != code {
			t.Fatalf("verify --json: exit %d, want %d: %s", r.code, code, r.stderr)
		}
		var res result
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("verify --json: %v\n%s", err, r.stdout)
		}
		return res
	}
	if res := read(exitOK); res.Cluster != "main" || res.Checked != 2 || res.Total != 2 || res.Unsigned != 2 || res.Bad != 0 || res.Bytes <= 0 || len(res.Findings) != 0 {
		t.Errorf("verify --json: %+v", res)
	}
	// A run by hand or by cron reports as the sidecar's jobs do, into a
	// node_exporter textfile that keeps the last success through a failure.
	prom := filepath.Join(t.TempDir(), "pgward.prom")
	pgward(t, "--repo", repoURL, "verify", "--metrics-file", prom).check(t, exitOK, nil, nil)
	pgward(t, "--repo", repoURL, "prune", "--metrics-file", prom).check(t, exitOK, nil, nil)
	before := string(readFile(t, prom))
	for _, want := range []string{`pgward_job_last_ok{cluster="main",job="verify"} 1`, `pgward_job_last_ok{cluster="main",job="prune"} 1`,
		`pgward_job_last_success_timestamp_seconds{cluster="main",job="verify"}`, `pgward_job_last_bytes{cluster="main",job="verify"}`} {
		if !strings.Contains(before, want) {
			t.Errorf("metrics file lacks %s:\n%s", want, before)
		}
	}
	// Damage one segment: it is named, with why.
	var victim string
	filepath.Walk(filepath.Join(dir, "main", "wal"), func(p string, fi os.FileInfo, _ error) error {
		if fi != nil && !fi.IsDir() && strings.Contains(p, "000000010000000000000004") {
			victim = p
		}
		return nil
	})
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	os.WriteFile(victim, data, 0o600)
	res := read(exitError)
	pgward(t, "--repo", repoURL, "verify", "--metrics-file", prom).check(t, exitError, nil, []string{"job failed"})
	pgward(t, "--repo", repoURL, "verify", "--metrics-file", prom).check(t, exitError, nil, nil)
	after := string(readFile(t, prom))
	if !strings.Contains(after, `pgward_job_last_ok{cluster="main",job="verify"} 0`) || !strings.Contains(after, `pgward_scheduled_job_failures_total{cluster="main",job="verify"} 2`) ||
		!strings.Contains(after, `pgward_job_last_ok{cluster="main",job="prune"} 1`) {
		t.Errorf("metrics file after a failed verify:\n%s", after)
	}
	lastSuccess := func(text string) string {
		for _, l := range strings.Split(text, "\n") {
			if strings.HasPrefix(l, `pgward_job_last_success_timestamp_seconds{cluster="main",job="verify"}`) {
				return l
			}
		}
		return ""
	}
	if lastSuccess(after) == "" || lastSuccess(after) != lastSuccess(before) {
		t.Errorf("the failed run lost the last success: before %q, after %q", lastSuccess(before), lastSuccess(after))
	}
	if res.Bad != 1 || len(res.Findings) != 1 || !strings.Contains(res.Findings[0].Key, "000000010000000000000004") || res.Findings[0].Error == "" {
		t.Errorf("verify --json with a damaged segment: %+v", res)
	}
}

// syncBuffer is a bytes.Buffer safe to read while a goroutine writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// Off a terminal, long work logs a line with bytes, rate and time left
// every --progress-interval.
func TestProgressLogsOffTerminal(t *testing.T) {
	var logs syncBuffer
	app := newApp(&bytes.Buffer{}, &logs)
	set := flagSetOf(t, app, "--progress-interval", "5ms")
	c := cli.NewContext(app, set, nil)
	s := settings{LogLevel: "info"}
	log, _ := s.logger(&logs)
	p := startProgress(c, log, "restore", 1000, false)
	p.Add(250)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "msg=progress") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.Finish()
	line := logs.String()
	for _, want := range []string{"msg=progress", "what=restore", "bytes=250", "total=1000", "percent=25", "left=", "rate="} {
		if !strings.Contains(line, want) {
			t.Errorf("progress log %q lacks %s", line, want)
		}
	}
	// Finish waits for the logging goroutine: nothing is written after it,
	// and a second Finish is harmless.
	n := strings.Count(logs.String(), "msg=progress")
	p.Finish()
	p.Add(1)
	if strings.Count(logs.String(), "msg=progress") != n {
		t.Error("progress still logs after Finish")
	}
}

// flagSetOf parses args with the app's global options.
func flagSetOf(t *testing.T, app *cli.App, args ...string) *flag.FlagSet {
	t.Helper()
	set := flag.NewFlagSet("pgward", flag.ContinueOnError)
	for _, f := range app.Flags {
		if err := f.Apply(set); err != nil {
			t.Fatal(err)
		}
	}
	if err := set.Parse(args); err != nil {
		t.Fatal(err)
	}
	return set
}
