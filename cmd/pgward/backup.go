package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
	"golang.org/x/time/rate"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/jobs"
	"github.com/pgward/pgward/storage"
)

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:  "backup",
		Usage: "take a base backup now (on the replica), or list, show, delete and pin backups",
		Description: `Without a subcommand, takes a base backup of --source (typically the replica:
the primary carries no load) over the replication protocol. Each tar archive
(the data directory, each tablespace), compressed with zstd by the server
(--server-compression), streams through sealing (encryption and signing)
into the repository in parts of --part-size; the server's
backup_manifest (CRC32C checksums) is stored beside it. backup.json is written
last, once the WAL from the backup's start to its stop is in the repository
(from pgward stream or archive_command): a backup without it is unfinished.

One backup per cluster runs at a time (a lock in the repository; a lock whose
holder stopped renewing it is broken after its lease, with a warning).`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "source", EnvVars: []string{"PGWARD_BACKUP_SOURCE"}, Usage: "connection `STRING` of the server to back up (PG* variables apply)"},
			&cli.StringFlag{Name: "checkpoint", Value: "spread", Usage: "checkpoint `MODE` at the start: fast or spread"},
			&cli.StringFlag{Name: "label", Usage: "backup `LABEL` (default: pgward <id>)"},
			&cli.StringFlag{Name: "part-size", Value: "1GiB", Usage: "store each archive in parts of `SIZE` (of the stream the server sends)"},
			&cli.DurationFlag{Name: "wal-timeout", Value: basebackup.DefaultWALTimeout, Usage: "wait at most `DURATION` for the WAL the backup needs"},
			&cli.BoolFlag{Name: "json", Usage: "print the finished backup's backup.json"},
		}, slices.Concat(backupCompressionFlags(""), backupRateFlags(""), oneShotFlags())...),
		Action:       runBackup,
		OnUsageError: flagUsageError,
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list backups with their status: finished, running (the lock's holder is alive), failed (parts without backup.json) or refused (backup.json damaged or not trusted)",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print a JSON array (docs/operations.md: the fields)"},
					&cli.StringFlag{Name: "status", Usage: "list only backups with this `STATUS`: finished, running, failed or refused"},
				},
				Action:       runBackupList,
				OnUsageError: flagUsageError,
			},
			{Name: "show", Usage: "show one backup's backup.json", ArgsUsage: "ID", Action: runBackupShow, OnUsageError: flagUsageError},
			{
				Name: "delete", Usage: "delete a backup (refused while retention still needs it, unless --force)", ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "force", Usage: "delete even what retention keeps"},
					retentionWindowFlag("without a stored retention policy: the point-in-time recovery `WINDOW` retention keeps"),
				},
				Action:       runBackupDelete,
				OnUsageError: flagUsageError,
			},
			{Name: "pin", Usage: "keep a backup whatever retention says", ArgsUsage: "ID", Action: func(c *cli.Context) error { return runBackupPin(c, true) }, OnUsageError: flagUsageError},
			{Name: "unpin", Usage: "let retention decide again", ArgsUsage: "ID", Action: func(c *cli.Context) error { return runBackupPin(c, false) }, OnUsageError: flagUsageError},
		},
	}
}

// newBackupConfig checks the backup settings, from the flags of `backup`
// or (named with flagPrefix "backup-") of the sidecar's schedule; a flag
// the command lacks reads as its zero value.
func newBackupConfig(c *cli.Context, a *archive.Archive, log *slog.Logger, flagPrefix, source string) (basebackup.Config, error) {
	connCfg, err := parseConn(flagPrefix+"source", source)
	if err != nil {
		return basebackup.Config{}, err
	}
	opts := basebackup.Options{Label: c.String(flagPrefix + "label")}
	switch checkpoint := c.String(flagPrefix + "checkpoint"); checkpoint {
	case "fast":
		opts.Fast = true
	case "spread":
	default:
		return basebackup.Config{}, fmt.Errorf("--%scheckpoint %s: want fast or spread", flagPrefix, shortQuote(checkpoint))
	}
	if maxRate := c.String(flagPrefix + "max-rate"); maxRate != "" {
		rate, err := config.ParseSize(maxRate)
		if err != nil || rate < 32000 || rate > 1<<30 {
			return basebackup.Config{}, fmt.Errorf("--%smax-rate %s: want 32kB to 1GiB per second", flagPrefix, shortQuote(maxRate))
		}
		opts.MaxRate = int(max(rate>>10, 32)) // the server counts kB/s, 32 at least
	}
	switch compression := c.String(flagPrefix + "server-compression"); compression {
	case "zstd":
		opts.ServerCompress = true
	case "none":
	default:
		return basebackup.Config{}, fmt.Errorf("--%sserver-compression %s: want zstd or none", flagPrefix, shortQuote(compression))
	}
	opts.CompressWorkers = c.Int(flagPrefix + "compress-workers")
	if opts.CompressWorkers < 0 || opts.CompressWorkers > basebackup.MaxCompressWorkers {
		return basebackup.Config{}, fmt.Errorf("--%scompress-workers %d: want 0 to %d", flagPrefix, opts.CompressWorkers, basebackup.MaxCompressWorkers)
	}
	partSize := c.String(flagPrefix + "part-size")
	size, err := config.ParseSize(partSize)
	if err != nil || size < 1<<20 {
		return basebackup.Config{}, fmt.Errorf("--%spart-size %s: want at least 1MiB", flagPrefix, shortQuote(partSize))
	}
	limit, err := uploadLimit(c, flagPrefix+"upload-limit")
	if err != nil {
		return basebackup.Config{}, err
	}
	return basebackup.Config{Conn: connCfg, Options: opts, PartSize: size, WALTimeout: c.Duration(flagPrefix + "wal-timeout"),
		Logger: log, Archive: a, Limiter: rate.NewLimiter(limit, uploadBurst)}, nil
}

// uploadBurst is how far ahead of its pace a limited backup may store.
const uploadBurst = 1 << 20

// uploadLimit reads a bandwidth option: a rate per second (at least
// 64kB), or rate.Inf when it is not given.
func uploadLimit(c *cli.Context, name string) (rate.Limit, error) {
	v := c.String(name)
	if v == "" {
		return rate.Inf, nil
	}
	n, err := config.ParseSize(v)
	if err != nil || n < 64000 {
		return 0, fmt.Errorf("--%s %s: want a rate per second of at least 64kB, such as 50MiB", name, shortQuote(v))
	}
	return rate.Limit(n), nil
}

// backupRateFlags pace the backup: the server's sending (MAX_RATE) and
// what pgward stores.
func backupRateFlags(prefix string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: prefix + "max-rate", Usage: "limit the server's sending to `RATE` per second (e.g. 100MiB; 32kB minimum)"},
		&cli.StringFlag{Name: prefix + "upload-limit", Usage: "store at most `RATE` per second into the repository (a bandwidth limit; e.g. 50MiB)"},
	}
}

// backupCompressionFlags are the settings of the server's compression,
// for `backup` (prefix "") and the sidecar's schedule ("backup-").
func backupCompressionFlags(prefix string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: prefix + "server-compression", Value: "zstd",
			Usage: "`METHOD` the server compresses the backup with before sending it: zstd, or none to compress in pgward (a server that cannot is asked again with none)"},
		&cli.IntFlag{Name: prefix + "compress-workers", Value: 2,
			Usage: "zstd threads the server compresses with, besides the walsender (`N`, 0 to 64; 0: the walsender alone)"},
	}
}

func runBackup(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unknown backup subcommand %q (list, show, delete, pin, unpin)", c.Args().First())
	}
	source, err := connFlag(c, "source")
	if err != nil {
		return err
	}
	a, log, err := archiveFor(c, true, false)
	if err != nil {
		return err
	}
	cfg, err := newBackupConfig(c, a, log, "", source)
	if err != nil {
		return err
	}
	limitMemory(memoryLimit)
	if cfg.Now, err = clock(); err != nil {
		return err
	}
	prog := startProgress(c, log, "backup", 0, c.Bool("json"))
	cfg.Progress = prog.Update
	var info *catalog.BackupInfo
	err = runOneShot(c, log, "backup", a.Layout.Cluster, func(ctx context.Context) (jobs.Outcome, error) {
		var err error
		info, err = basebackup.Take(ctx, cfg)
		prog.Finish()
		if err != nil {
			return jobs.Outcome{}, err
		}
		return jobs.Outcome{Bytes: info.StoredBytes, Note: "backup " + info.ID}, nil
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return json.NewEncoder(c.App.Writer).Encode(info)
	}
	fmt.Fprintf(c.App.Writer, "backup %s: %s of data stored as %s, WAL %s to %s\n",
		info.ID, humanBytes(info.DataBytes), humanBytes(info.StoredBytes), info.StartLSN, info.StopLSN)
	return nil
}

func runBackupList(c *cli.Context) error {
	s := settingsFrom(c)
	store, layout, err := s.openRepo()
	if err != nil {
		return err
	}
	trust, err := s.trust()
	if err != nil {
		return err
	}
	want := c.String("status")
	switch want {
	case "", basebackup.StatusFinished, basebackup.StatusRunning, basebackup.StatusFailed, basebackup.StatusRefused:
	default:
		return fmt.Errorf("--status %s: want finished, running, failed or refused", shortQuote(want))
	}
	now, err := clock()
	if err != nil {
		return err
	}
	all, err := basebackup.ListAll(c.Context, store, layout, &trust, now())
	if err != nil {
		return err
	}
	entries := []basebackup.Entry{}
	for _, e := range all {
		if want == "" || e.Status == want {
			entries = append(entries, e)
		}
		if e.Status == basebackup.StatusRefused {
			fmt.Fprintf(c.App.ErrWriter, "pgward: warning: backup %s: %s\n", e.ID, e.Error)
		}
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, entries)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tFINISHED (UTC)\tDURATION\tTIMELINE\tSTART LSN\tSTOP LSN\tDATA\tSTORED\tPINNED")
	for _, b := range entries {
		if b.Status != basebackup.StatusFinished {
			stored, note := "-", ""
			if b.PartsBytes > 0 {
				stored = humanBytes(b.PartsBytes)
			}
			switch b.Status {
			case basebackup.StatusRunning:
				note = "since " + b.Since.UTC().Format("2006-01-02 15:04:05") + " by " + b.Holder
			case basebackup.StatusFailed:
				if !b.LastWrite.IsZero() {
					note = "last write " + b.LastWrite.UTC().Format("2006-01-02 15:04:05")
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s\t%s\n", b.ID, b.Status, stored, note)
			continue
		}
		pinned := ""
		if b.Pinned {
			pinned = "yes"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Status, b.StopTime.Format("2006-01-02 15:04:05"),
			b.StopTime.Sub(b.StartTime).Round(time.Second), b.StopTimeline, b.StartLSN, b.StopLSN,
			humanBytes(b.DataBytes), humanBytes(b.StoredBytes), pinned)
	}
	return tw.Flush()
}

// oneBackup reads the single backup id argument, and the command's flags
// written after it, and opens the repository.
func oneBackup(c *cli.Context) (string, storage.Backend, catalog.Layout, error) {
	args, err := argsThenFlags(c)
	if err != nil {
		return "", nil, catalog.Layout{}, err
	}
	if len(args) != 1 {
		return "", nil, catalog.Layout{}, fmt.Errorf("%s takes one backup id (see 'pgward backup list'), got %d arguments", c.Command.Name, len(args))
	}
	if err := basebackup.ValidateID(args[0]); err != nil {
		// Not err: it quotes the id whole, however long.
		return "", nil, catalog.Layout{}, fmt.Errorf("invalid backup id %s: ids look like 20261121T225704Z (see 'pgward backup list')", shortQuote(args[0]))
	}
	store, layout, err := settingsFrom(c).openRepo()
	return args[0], store, layout, err
}

// argsThenFlags returns the command's arguments, applying those that are
// its flags: urfave/cli stops reading flags at the first argument, and
// the documented form is `backup delete ID --force` (issue 11). "--"
// ends the flags.
func argsThenFlags(c *cli.Context) ([]string, error) {
	var args []string
	in := c.Args().Slice()
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			return append(args, in[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			args = append(args, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var f cli.Flag
		for _, cf := range c.Command.Flags {
			if slices.Contains(cf.Names(), name) {
				f = cf
			}
		}
		if f == nil {
			return nil, fmt.Errorf("%s: unknown option %s (see 'pgward backup %s --help')", c.Command.Name, shortQuote(a), c.Command.Name)
		}
		if _, isBool := f.(*cli.BoolFlag); isBool && !hasValue {
			value = "true"
		} else if !hasValue {
			if i+1 == len(in) {
				return nil, fmt.Errorf("%s: option --%s needs a value", c.Command.Name, name)
			}
			i++
			value = in[i]
		}
		if err := c.Set(name, value); err != nil {
			return nil, fmt.Errorf("--%s %s: want %s", name, shortQuote(value), flagWants(c.Command.Flags, name))
		}
	}
	return args, nil
}

func runBackupShow(c *cli.Context) error {
	id, store, layout, err := oneBackup(c)
	if err != nil {
		return err
	}
	b, err := basebackup.Get(c.Context, store, layout, id, nil)
	if err != nil {
		return err
	}
	return printJSON(c.App.Writer, b)
}

func runBackupDelete(c *cli.Context) error {
	id, store, layout, err := oneBackup(c)
	if err != nil {
		return err
	}
	policy, err := retentionPolicy(c.Context, c, store, layout, "", false)
	if err != nil {
		return err
	}
	window := policy.Window()
	force := c.Bool("force")
	if _, err := basebackup.Get(c.Context, store, layout, id, nil); err != nil && !(force && errors.Is(err, basebackup.ErrNoBackup)) {
		if errors.Is(err, basebackup.ErrNoBackup) {
			return fmt.Errorf("%w (an unfinished backup's parts are deleted with --force)", err)
		}
		return err
	}
	// --force deletes what retention keeps (docs/operations.md: a backup
	// inside the window, the base of its oldest second, a pinned one) and
	// the parts of an unfinished backup; it says what it overrode.
	backups, _, err := basebackup.List(c.Context, store, layout, nil)
	if err != nil {
		return err
	}
	var sums []catalog.BackupSummary
	pinned := false
	for _, b := range backups {
		sums = append(sums, catalog.BackupSummary{ID: b.ID, StopTime: b.StopTime, Pinned: b.Pinned})
		pinned = pinned || (b.ID == id && b.Pinned)
	}
	if catalog.KeepBackups(sums, time.Now(), window)[id] {
		why := fmt.Sprintf("inside the %s recovery window, or the base of its oldest second", window)
		if pinned {
			why = "pinned"
		}
		if !force {
			return fmt.Errorf("backup %s is still needed (%s): not deleted; use --force to delete it anyway", id, why)
		}
		fmt.Fprintf(c.App.ErrWriter, "pgward: warning: deleting backup %s although retention keeps it (%s), as --force says\n", id, why)
	}
	found, err := basebackup.Delete(c.Context, store, layout, id)
	if err != nil {
		return fmt.Errorf("delete backup %s: %w", id, err)
	}
	if !found {
		return fmt.Errorf("backup %q: %w", id, basebackup.ErrNoBackup)
	}
	fmt.Fprintf(c.App.Writer, "backup %s deleted\n", id)
	return nil
}

func runBackupPin(c *cli.Context, pin bool) error {
	id, store, layout, err := oneBackup(c)
	if err != nil {
		return err
	}
	return basebackup.Pin(c.Context, store, layout, id, pin)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
