package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/jobs"
	"github.com/pgward/pgward/prune"
	"github.com/pgward/pgward/seal"
)

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "apply retention: delete backups and WAL the recovery window no longer needs",
		Description: `Keeps every base backup finished inside the retention window (the repository's
policy, 'pgward retention'; without one --retention-window, default 7 days), the newest
one finished before it (the base of the window's oldest second) and pinned
backups, and all WAL from the oldest kept backup's start; deletes the rest,
and failed backups (no backup.json) older than the window. Ordering uses the
recorded times and LSNs, never object names. A backup's backup.json goes
before its parts, so an interrupted prune never leaves a half-visible backup.
Takes the backup lock. --dry-run lists what would go and why.`,
		Flags: append([]cli.Flag{
			retentionWindowFlag("without a stored retention policy: the point-in-time recovery `WINDOW` to keep", "window"),
			&cli.BoolFlag{Name: "dry-run", Usage: "list what would be deleted, and why; delete nothing"},
			&cli.BoolFlag{Name: "json", Usage: "print the result (or, with --dry-run, the plan) as one JSON object"},
		}, oneShotFlags()...),
		Action: runPrune,
	}
}

func runPrune(c *cli.Context) error {
	now, err := clock()
	if err != nil {
		return err
	}
	a, log, err := archiveFor(c, false, false)
	if err != nil {
		return err
	}
	// backup.json steers what prune deletes: check who wrote it.
	trust, err := settingsFrom(c).trust()
	if err != nil {
		return err
	}
	a.Opener = seal.NewOpener(nil).SetTrust(trust)
	policy, err := retentionPolicy(c.Context, c, a.Store, a.Layout, "", false)
	if err != nil {
		return err
	}
	opts := prune.Options{Window: policy.Window(), DryRun: c.Bool("dry-run"), Now: now}
	if opts.DryRun {
		_, err := runPruneWith(c.Context, a, log, opts, c.Bool("json"), c.App.Writer)
		return err
	}
	return runOneShot(c, log, "prune", a.Layout.Cluster, func(ctx context.Context) (jobs.Outcome, error) {
		res, err := runPruneWith(ctx, a, log, opts, c.Bool("json"), c.App.Writer)
		return jobs.Outcome{Note: res.Summary()}, err
	})
}

// runPruneWith prunes a's cluster and prints each deletion as it is made
// (or the whole result as JSON).
func runPruneWith(ctx context.Context, a *archive.Archive, log *slog.Logger, opts prune.Options, asJSON bool, out io.Writer) (prune.Result, error) {
	opts.Logger = log
	verb := "deleted"
	if opts.DryRun {
		verb = "would delete"
	}
	var each func(prune.Deletion)
	if !asJSON {
		each = func(d prune.Deletion) {
			what := d.Name
			if d.Kind == "backup" {
				what = "backup " + d.Name
			}
			fmt.Fprintf(out, "%s %s: %s\n", verb, what, d.Reason)
		}
	}
	res, err := prune.Run(ctx, a, opts, each)
	if err != nil {
		return res, err
	}
	if asJSON {
		return res, printJSON(out, res)
	}
	fmt.Fprintln(out, res.Summary())
	return res, nil
}
