package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/probe"
)

func checkCommand() *cli.Command {
	return &cli.Command{
		Name:  "check",
		Usage: "freshness probe for monitoring (Nagios/Icinga exit codes and perfdata, or --json)",
		Description: `Reports how old the newest archived WAL and base backup are, the restorable
window, and gaps in the WAL chain inside it (from the oldest backup retention
keeps to the newest stored WAL, along the timeline history).

Exit status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (repository unreachable,
unreadable settings). Reading the history of a timeline above 1 needs the
identity (--identity-file).`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "wal-warning", Value: probe.DefaultThresholds.WALWarning, Usage: "warn when the newest WAL is older than `AGE`"},
			&cli.DurationFlag{Name: "wal-critical", Value: probe.DefaultThresholds.WALCritical, Usage: "critical when the newest WAL is older than `AGE`"},
			&cli.DurationFlag{Name: "backup-warning", Value: probe.DefaultThresholds.BackupWarning, Usage: "warn when the newest base backup is older than `AGE`"},
			&cli.DurationFlag{Name: "backup-critical", Value: probe.DefaultThresholds.BackupCritical, Usage: "critical when the newest base backup is older than `AGE`"},
			retentionWindowFlag("without a stored retention policy: the point-in-time recovery `WINDOW` retention keeps", "window"),
			&cli.BoolFlag{Name: "json", Usage: "print the facts as a JSON object"},
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error { return withStatus(int(probe.Unknown), err) },
		Action: func(c *cli.Context) error {
			clk, err := clock()
			if err != nil {
				return withStatus(int(probe.Unknown), err)
			}
			a, _, err := archiveFor(c, false, true)
			if err != nil {
				return withStatus(int(probe.Unknown), err)
			}
			th := probe.Thresholds{WALWarning: c.Duration("wal-warning"), WALCritical: c.Duration("wal-critical"),
				BackupWarning: c.Duration("backup-warning"), BackupCritical: c.Duration("backup-critical")}
			policy, err := retentionPolicy(c.Context, c, a.Store, a.Layout, "", false)
			if err != nil {
				return withStatus(int(probe.Unknown), err)
			}
			r := probe.Check(c.Context, a, clk(), th, policy.Window())
			if c.Bool("json") {
				if r.Reasons == nil {
					r.Reasons = []string{}
				}
				if err := printJSON(c.App.Writer, r); err != nil {
					return err
				}
			} else {
				fmt.Fprintln(c.App.Writer, statusLine(r, th))
			}
			if r.Status == probe.OK {
				return nil
			}
			return withStatus(int(r.Status), errSilent)
		},
	}
}

// statusLine is the Nagios plugin output: one line, then perfdata.
func statusLine(r probe.Result, th probe.Thresholds) string {
	var b strings.Builder
	fmt.Fprintf(&b, "PGWARD %s - ", r.Status)
	if len(r.Reasons) > 0 {
		b.WriteString(strings.Join(r.Reasons, "; "))
	} else if r.WAL != nil && r.Backup != nil {
		fmt.Fprintf(&b, "newest WAL %s %.0fs old, newest backup %s %.1fh old", r.WAL.Name, r.WAL.Age, r.Backup.ID, r.Backup.Age/3600)
	}
	var perf []string
	if r.WAL != nil {
		perf = append(perf, fmt.Sprintf("wal_age=%.0fs;%.0f;%.0f;0", r.WAL.Age, th.WALWarning.Seconds(), th.WALCritical.Seconds()))
	}
	if r.Backup != nil {
		perf = append(perf, fmt.Sprintf("backup_age=%.0fs;%.0f;%.0f;0", r.Backup.Age, th.BackupWarning.Seconds(), th.BackupCritical.Seconds()))
	}
	if r.Window != nil {
		perf = append(perf, fmt.Sprintf("window=%.0fs;;;0", r.Window.To.Sub(r.Window.From).Seconds()))
	}
	perf = append(perf, fmt.Sprintf("gaps=%d;;1;0", len(r.Gaps)))
	return b.String() + " | " + strings.Join(perf, " ")
}

// clock is the clock of check, prune, dumps and the times backups
// record. PGWARD_TEST_NOW (RFC 3339) starts it at that time, so tests
// simulate days without waiting for them; it still runs, so leases taken
// meanwhile are renewed.
func clock() (func() time.Time, error) {
	v := os.Getenv("PGWARD_TEST_NOW")
	if v == "" {
		return time.Now, nil
	}
	start, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return nil, fmt.Errorf("PGWARD_TEST_NOW %q: %w", v, err)
	}
	begun := time.Now()
	return func() time.Time { return start.Add(time.Since(begun)) }, nil
}
