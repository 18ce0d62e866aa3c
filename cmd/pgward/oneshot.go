package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/jobs"
)

// oneShotFlags are the reporting options of the commands cron or a timer
// runs (backup, prune, verify, dump, dump drill): what the sidecar does
// for its scheduled jobs, for a run by hand.
func oneShotFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-file", Usage: "write the run's metrics to `FILE` (node_exporter textfile format; kept: other jobs' series and the last success before a failure)"},
		&cli.StringFlag{Name: "notify-url", EnvVars: []string{"PGWARD_NOTIFY_URL"}, Usage: "POST a JSON notice to `URL` if the run fails (retried)"},
		&cli.BoolFlag{Name: "notify-success", Usage: "with --notify-url: notify a success too"},
	}
}

// runOneShot runs a command's work as the job name, through the runner the
// sidecar uses: logged, notified (--notify-url) and written with extra to
// --metrics-file.
func runOneShot(c *cli.Context, log *slog.Logger, name, cluster string, run func(context.Context) (jobs.Outcome, error), extra ...prometheus.Collector) error {
	notify, err := newNotifier(c.String("notify-url"), cluster, c.Bool("notify-success"), log)
	if err != nil {
		return err
	}
	// One textfile may gather several clusters' runs: each series names
	// its cluster.
	reg := prometheus.NewRegistry()
	labeled := prometheus.WrapRegistererWith(prometheus.Labels{"cluster": cluster}, reg)
	for _, col := range extra {
		reg.MustRegister(col) // as they always were: without the label
	}
	r := &jobs.Runner{Logger: log, Metrics: jobs.NewMetrics(labeled), Notify: notify, Interactive: true}
	_, runErr := r.Once(c.Context, jobs.Job{Name: name, Run: run})
	if f := c.String("metrics-file"); f != "" {
		if err := jobs.WriteTextfile(f, reg); err != nil {
			if runErr == nil {
				return fmt.Errorf("--metrics-file: %w", err)
			}
			log.Error("metrics file not written", "err", err)
		}
	}
	return runErr
}
