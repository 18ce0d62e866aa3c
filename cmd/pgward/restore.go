package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/restore"
	"github.com/pgward/pgward/wal"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:  "restore",
		Usage: "restore a base backup into a data directory, set to recover to a point in time",
		Description: `Chooses the newest base backup that finished before the target, unpacks it into
--pgdata and writes recovery.signal and the recovery settings (restore_command =
pgward wal-fetch, recovery_target_*, recovery_target_timeline = 'latest',
recovery_target_action). Starting PostgreSQL is the DBA's step.

Give exactly one target: --to-time, --to-lsn, --to-xid, --to-name or --latest.
A target outside the restorable window is refused before anything is touched,
with the window in the message. --dry-run prints the plan and changes nothing.

While it runs, the data directory holds the file pgward-restore-incomplete:
a directory that still has it is unusable. recovery.signal is written last.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pgdata", Usage: "restore into `DIR` (absolute; created if missing; must be empty)"},
			&cli.StringFlag{Name: "to-time", Usage: "recover to `TIME`: RFC 3339, or YYYY-MM-DD HH:MM:SS[.ffffff][±TZ] (local time without a zone)"},
			&cli.StringFlag{Name: "to-lsn", Usage: "recover to `LSN` (like 0/16B3748)"},
			&cli.StringFlag{Name: "to-xid", Usage: "recover to the commit of transaction `XID`"},
			&cli.StringFlag{Name: "to-name", Usage: "recover to the restore point `NAME` (pg_create_restore_point)"},
			&cli.BoolFlag{Name: "latest", Usage: "recover to the end of the archived WAL"},
			&cli.StringFlag{Name: "target-action", Value: "promote", Usage: "at the target: promote, pause or shutdown"},
			&cli.StringFlag{Name: "backup", Usage: "restore backup `ID` instead of the one pgward chooses"},
			&cli.StringSliceFlag{Name: "tablespace-map", Usage: "restore tablespace `OID=DIR` elsewhere than its recorded location"},
			&cli.BoolFlag{Name: "force", Usage: "restore into a non-empty directory, writing over it"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and change nothing"},
			&cli.BoolFlag{Name: "show-window", Usage: "print the restorable window per timeline and exit"},
			&cli.IntFlag{Name: "jobs", Value: 2, Usage: "download up to `N` backup parts at once (1: stream each part as it is unpacked)"},
			&cli.BoolFlag{Name: "keep-archiving", Usage: "keep the backup's archive_mode (by default the restored copy does not archive: a copy archiving into the repository it came from would change which timeline restores follow)"},
			&cli.IntFlag{Name: "prefetch", Value: defaultPrefetch * 2, Usage: "fetch the first `N` WAL segments replay needs while the backup downloads, and let restore_command prefetch (0: off)"},
			&cli.BoolFlag{Name: "start", Usage: "start the restored cluster (as postgres when root), wait until recovery reaches the target, and report where it stopped"},
			&cli.IntFlag{Name: "port", Usage: "with --start: the `PORT` the restored cluster listens on (default: the backup's)"},
			&cli.DurationFlag{Name: "start-timeout", Value: time.Hour, Usage: "with --start: give up after `DURATION`"},
		},
		Action: runRestore,
	}
}

func restoreTarget(c *cli.Context) (restore.Target, error) {
	var targets []restore.Target
	if v := c.String("to-time"); v != "" {
		t, err := restore.ParseTime(v, time.Local)
		if err != nil {
			return restore.Target{}, fmt.Errorf("--to-time: %w", err)
		}
		targets = append(targets, restore.Target{Kind: restore.Time, Time: t})
	}
	if v := c.String("to-lsn"); v != "" {
		l, err := wal.ParseLSN(v)
		if err != nil {
			return restore.Target{}, fmt.Errorf("--to-lsn: %w", err)
		}
		targets = append(targets, restore.Target{Kind: restore.LSN, LSN: l})
	}
	if v := c.String("to-xid"); v != "" {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil || x < 3 {
			return restore.Target{}, fmt.Errorf("--to-xid %q: want a transaction id (a number, 3 or more)", v)
		}
		targets = append(targets, restore.Target{Kind: restore.XID, XID: x})
	}
	if v := c.String("to-name"); v != "" {
		targets = append(targets, restore.Target{Kind: restore.Name, Name: v})
	}
	if c.Bool("latest") {
		targets = append(targets, restore.Target{Kind: restore.Latest})
	}
	if len(targets) != 1 {
		return restore.Target{}, fmt.Errorf("give exactly one target: --to-time, --to-lsn, --to-xid, --to-name or --latest (got %d)", len(targets))
	}
	return targets[0], nil
}

func runRestore(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("restore takes no arguments, got %q", c.Args().First())
	}
	if c.Bool("show-window") {
		return showWindow(c)
	}
	target, err := restoreTarget(c)
	if err != nil {
		return err
	}
	action := c.String("target-action")
	if action != "promote" && action != "pause" && action != "shutdown" {
		return fmt.Errorf("--target-action %q: want promote, pause or shutdown", action)
	}
	if c.Int("jobs") < 1 || c.Int("jobs") > 64 {
		return fmt.Errorf("--jobs %d: want 1 to 64", c.Int("jobs"))
	}
	pgdata := c.String("pgdata")
	if pgdata == "" || !filepath.IsAbs(pgdata) {
		return fmt.Errorf("--pgdata %q: give the absolute path of the directory to restore into", pgdata)
	}
	tsMap := map[string]string{}
	for _, m := range c.StringSlice("tablespace-map") {
		oid, dir, ok := strings.Cut(m, "=")
		if !ok || oid == "" || !filepath.IsAbs(dir) {
			return fmt.Errorf("--tablespace-map %q: want OID=/absolute/dir", m)
		}
		tsMap[oid] = dir
	}
	a, log, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	if target.Kind == restore.Time {
		fmt.Fprintf(c.App.ErrWriter, "target time: %s\n", target.Time.UTC().Format("2006-01-02 15:04:05.999999 UTC"))
	}
	st, err := restore.LoadState(c.Context, a)
	if err != nil {
		return err
	}
	plan, err := restore.MakePlan(st, target, c.String("backup"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "plan: backup %s (finished %s), replay WAL from %s along timeline %d (stored up to %s), fetch %s, recover to %s\n",
		plan.Backup.ID, plan.Backup.StopTime.UTC().Format(time.RFC3339), plan.WALFrom, plan.Timeline, plan.WALTo, humanBytes(plan.Bytes), plan.Target)
	if c.Bool("dry-run") {
		return nil
	}
	log.Info("restore started", "backup_id", plan.Backup.ID, "pgdata", pgdata)
	if err := restore.Prepare(pgdata, plan.Backup.ID, c.Bool("force")); err != nil {
		return err
	}
	// Fetch the first WAL replay needs into wal-fetch's spool while the
	// backup downloads, so recovery does not start with round trips.
	prefetchCtx, stopPrefetch := context.WithCancel(c.Context)
	var prefetch sync.WaitGroup
	if n := c.Int("prefetch"); n > 0 {
		prefetch.Go(func() {
			if err := prefetchWAL(prefetchCtx, a, settingsFrom(c), plan, pgdata, n); err != nil {
				log.Warn("early WAL prefetch stopped", "err", err)
			}
		})
	}
	err = restore.Unpack(c.Context, a.Store, a.Opener, plan.Backup, pgdata, tsMap, c.Bool("force"), c.Int("jobs"))
	if err != nil {
		stopPrefetch()
	}
	prefetch.Wait()
	stopPrefetch()
	if err != nil {
		return fmt.Errorf("%w (the directory is unusable: %s marks it)", err, restore.IncompleteMarker)
	}
	cmd, err := restoreCommandFor(c, pgdata, c.Int("prefetch"))
	if err != nil {
		return err
	}
	if err := restore.WriteRecovery(pgdata, restore.Recovery{RestoreCommand: cmd, Target: target, Action: action, KeepArchiving: c.Bool("keep-archiving")}); err != nil {
		return err
	}
	if err := restore.Finish(pgdata); err != nil {
		return err
	}
	if !c.Bool("start") {
		fmt.Fprintf(c.App.Writer, "restored backup %s into %s; start PostgreSQL to recover to %s\n", plan.Backup.ID, pgdata, plan.Target)
		return nil
	}
	if port := c.Int("port"); port > 0 {
		if err := appendConf(pgdata, fmt.Sprintf("port = %d", port)); err != nil {
			return err
		}
	}
	started, err := restore.Start(c.Context, pgdata, c.Duration("start-timeout"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "recovered backup %s to %s in %s: %s\n", plan.Backup.ID, plan.Target, started.Duration.Round(time.Second), started.Reached)
	return nil
}

func appendConf(pgdata, line string) error {
	f, err := os.OpenFile(filepath.Join(pgdata, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(line + "\n")
	return err
}

// restoreCommandFor writes the repository settings restore_command needs
// into a config file beside the data directory (no secrets: S3 keys stay
// in the server's environment) and returns the command.
func restoreCommandFor(c *cli.Context, pgdata string, prefetch int) (string, error) {
	s := settingsFrom(c)
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	if s.IdentityFile != "" {
		if s.IdentityFile, err = filepath.Abs(s.IdentityFile); err != nil {
			return "", err
		}
	}
	cfg := map[string]any{"repo": s.Repo, "cluster": s.Cluster}
	for k, v := range map[string]string{flagIdentityFile: s.IdentityFile, flagS3Endpoint: s.S3Endpoint, flagS3Region: s.S3Region} {
		if v != "" {
			cfg[k] = v
		}
	}
	if s.S3Insecure {
		cfg[flagS3Insecure] = true
	}
	if s.S3PathStyle {
		cfg[flagS3PathStyle] = true
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", err
	}
	path := filepath.Join(pgdata, "pgward-restore.yaml")
	if err := os.WriteFile(path, append([]byte("# written by pgward restore for restore_command\n"), b...), 0o600); err != nil {
		return "", err
	}
	if prefetch == 0 {
		return fmt.Sprintf("%s --config %s wal-fetch --prefetch 0 %%f %%p", exe, path), nil
	}
	return fmt.Sprintf("%s --config %s wal-fetch %%f %%p", exe, path), nil
}

// showWindow prints, per timeline, the oldest backup's end and the newest
// stored WAL: what restore can reach.
func showWindow(c *cli.Context) error {
	a, _, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	st, err := restore.LoadState(c.Context, a)
	if err != nil {
		return err
	}
	for _, w := range restore.Windows(st) {
		if w.From.IsZero() {
			fmt.Fprintf(c.App.Writer, "timeline %d: WAL up to %s (stored %s); no base backup on it\n", w.Timeline, w.ToLSN, w.To.UTC().Format(time.RFC3339))
			continue
		}
		fmt.Fprintf(c.App.Writer, "timeline %d: %s to %s (LSN %s to %s)\n", w.Timeline,
			w.From.UTC().Format(time.RFC3339), w.To.UTC().Format(time.RFC3339), w.FromLSN, w.ToLSN)
	}
	return nil
}

// prefetchWAL fills wal-fetch's spool in pgdata with the segments that
// follow the backup's start, as wal-fetch's own prefetcher would.
func prefetchWAL(ctx context.Context, a *archive.Archive, s settings, plan restore.Plan, pgdata string, count int) error {
	info, err := a.ClusterInfo(ctx)
	if err != nil {
		return err
	}
	spool := archive.Spool{Dir: filepath.Join(pgdata, "pg_wal", ".pgward-prefetch")}
	if err := spool.Claim(s.Cluster + " " + s.Repo); err != nil { // the origin wal-fetch will check
		return err
	}
	first := wal.SegmentNo(plan.WALFrom, info.WALSegmentSize)
	if first == 0 {
		return nil
	}
	// The prefetcher fetches the segments after the one "wanted".
	if err := spool.Want(wal.SegmentName(plan.Backup.StartTimeline, first-1, info.WALSegmentSize)); err != nil {
		return err
	}
	return a.Prefetch(ctx, spool, count, info.WALSegmentSize)
}
