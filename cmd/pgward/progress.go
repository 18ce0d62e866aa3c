package main

import (
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
)

// flagProgressInterval is how often long work logs its progress when
// standard error is not a terminal.
const flagProgressInterval = "progress-interval"

const defaultProgressInterval = 30 * time.Second

// progress reports long work (a backup, a restore, a verify, a dump
// restore): on a terminal a bar with bytes, rate and time left
// (schollz/progressbar); elsewhere, in a unit's journal or a cron mail, a
// log line every --progress-interval with the same facts, so a long run is
// seen to move.
type progress struct {
	what     string
	total    atomic.Int64 // 0: unknown
	done     atomic.Int64
	start    time.Time
	bar      *progressbar.ProgressBar
	log      *slog.Logger
	stop     chan struct{}
	finished sync.Once
	wg       sync.WaitGroup
}

// startProgress begins reporting work what of total bytes (0 if unknown).
// quiet turns it off (a --json run still logs off a terminal).
func startProgress(c *cli.Context, log *slog.Logger, what string, total int64, quiet bool) *progress {
	p := &progress{what: what, start: time.Now(), log: log, stop: make(chan struct{})}
	p.total.Store(total)
	if f, ok := c.App.ErrWriter.(*os.File); ok && isTerminal(f) {
		if !quiet {
			p.bar = progressbar.NewOptions64(max(total, -1),
				progressbar.OptionSetWriter(f), progressbar.OptionSetDescription(what),
				progressbar.OptionShowBytes(true), progressbar.OptionUseIECUnits(true),
				progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(250*time.Millisecond),
				progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
		}
		return p
	}
	interval := defaultProgressInterval
	if c != nil {
		if d := c.Duration(flagProgressInterval); d > 0 {
			interval = d
		}
	}
	p.wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.logLine("progress")
			}
		}
	})
	return p
}

// logLine logs what is done, the rate and, when the total is known, the
// time left.
func (p *progress) logLine(msg string) {
	done, total := p.done.Load(), p.total.Load()
	elapsed := time.Since(p.start)
	rate := float64(done) / max(elapsed.Seconds(), 0.001)
	args := []any{"what", p.what, "bytes", done, "elapsed", elapsed.Round(time.Second).String(), "rate", humanBytes(int64(rate)) + "/s"}
	if total > 0 {
		left := time.Duration(float64(max(total-done, 0))/max(rate, 1)) * time.Second
		args = append(args, "total", total, "percent", int(100*float64(done)/float64(total)), "left", left.Round(time.Second).String())
	}
	p.log.Info(msg, args...)
}

// Add counts n more bytes done.
func (p *progress) Add(n int64) {
	p.done.Add(n)
	if p.bar != nil {
		p.bar.Add64(n)
	}
}

// Update sets what is done and the total (0: unknown), for work that
// reports absolute positions.
func (p *progress) Update(done, total int64) {
	p.done.Store(done)
	if total > 0 && total != p.total.Load() {
		p.SetTotal(total)
	}
	if p.bar != nil {
		p.bar.Set64(done)
	}
}

// SetTotal sets the total once it is known.
func (p *progress) SetTotal(total int64) {
	p.total.Store(total)
	if p.bar != nil {
		p.bar.ChangeMax64(total)
	}
}

// Writer counts what is written through it.
func (p *progress) Writer() io.Writer { return progressWriter{p} }

type progressWriter struct{ p *progress }

func (w progressWriter) Write(b []byte) (int, error) {
	w.p.Add(int64(len(b)))
	return len(b), nil
}

// Finish stops reporting.
func (p *progress) Finish() {
	p.finished.Do(func() {
		close(p.stop)
		p.wg.Wait()
		if p.bar != nil {
			p.bar.Finish()
		}
	})
}
