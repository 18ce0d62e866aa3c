package main

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/pgward/pgward/inventory"
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
with the window in the message. --dry-run prints the plan (with the directory
each tablespace goes to) and changes nothing; it refuses what a restore would.

While it runs, the data directory holds the file pgward-restore-incomplete:
a directory that still has it is unusable. recovery.signal is written last.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "pgdata", Usage: "restore into `DIR` (absolute; created if missing; must be empty, or a data directory with --force)"},
			&cli.StringFlag{Name: "to-time", Usage: "recover to `TIME`: RFC 3339, or YYYY-MM-DD HH:MM:SS[.ffffff][±TZ] (local time without a zone)"},
			&cli.StringFlag{Name: "to-lsn", Usage: "recover to `LSN` (like 0/16B3748)"},
			&cli.StringFlag{Name: "to-xid", Usage: "recover to the commit of transaction `XID`"},
			&cli.StringFlag{Name: "to-name", Usage: "recover to the restore point `NAME` (pg_create_restore_point)"},
			&cli.BoolFlag{Name: "latest", Usage: "recover to the end of the archived WAL"},
			&cli.StringFlag{Name: "target-action", Value: "promote", Usage: "at the target: promote, pause or shutdown"},
			&cli.StringFlag{Name: "backup", Usage: "restore backup `ID` instead of the one pgward chooses"},
			&cli.StringSliceFlag{Name: "tablespace-map", Usage: "restore tablespace `OID=DIR` elsewhere than its recorded location"},
			&cli.BoolFlag{Name: "force", Usage: "replace the PostgreSQL data directory at --pgdata (refused for any other non-empty directory, one holding postmaster.pid, another data directory or a mount point below it)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan and change nothing"},
			&cli.BoolFlag{Name: "show-window", Usage: "print the restorable window per timeline and exit"},
			&cli.BoolFlag{Name: "json", Usage: "print the plan (--dry-run), the windows (--show-window) or the result as JSON; no progress bar"},
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
	var given []string
	for _, name := range []string{"to-time", "to-lsn", "to-xid", "to-name"} {
		if c.IsSet(name) {
			given = append(given, "--"+name)
			if c.String(name) == "" {
				return restore.Target{}, fmt.Errorf("--%s is empty: %s", name, map[string]string{
					"to-time": "give a time, like '2026-11-20 14:03:00+01' or 2026-11-20T13:03:00Z",
					"to-lsn":  "give an LSN, like 0/16B3748",
					"to-xid":  "give a transaction id, like 1234",
					"to-name": "give the name passed to pg_create_restore_point",
				}[name])
			}
		}
	}
	if c.Bool("latest") {
		given = append(given, "--latest")
	}
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
		if err != nil {
			return restore.Target{}, fmt.Errorf("--to-xid %q: want a transaction id (a number from 3 to %d)", v, uint64(restore.MaxXID))
		}
		targets = append(targets, restore.Target{Kind: restore.XID, XID: x})
	}
	if v := c.String("to-name"); v != "" {
		targets = append(targets, restore.Target{Kind: restore.Name, Name: v})
	}
	if c.Bool("latest") {
		targets = append(targets, restore.Target{Kind: restore.Latest})
	}
	switch {
	case len(targets) == 0:
		return restore.Target{}, errors.New("give exactly one target: --to-time, --to-lsn, --to-xid, --to-name or --latest (none was given)")
	case len(targets) > 1:
		return restore.Target{}, fmt.Errorf("give exactly one target: --to-time, --to-lsn, --to-xid, --to-name or --latest (%s were given)", strings.Join(given, ", "))
	}
	return targets[0], targets[0].Validate()
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
	pgdata = filepath.Clean(pgdata)
	tsMap, err := restore.ParseTablespaceMap(c.StringSlice("tablespace-map"))
	if err != nil {
		return err
	}
	// Refusals come before anything is touched, --dry-run or not.
	if err := restore.CheckDataDir(pgdata, c.Bool("force")); err != nil {
		return err
	}
	cmd, err := restoreCommandLine(pgdata, c.Int("prefetch"))
	if err != nil {
		return err
	}
	recovery := restore.Recovery{RestoreCommand: cmd, Target: target, Action: action, KeepArchiving: c.Bool("keep-archiving")}
	if err := recovery.Validate(); err != nil {
		return err
	}
	a, log, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	restoreConf, err := restoreConfig(settingsFrom(c))
	if err != nil {
		return err
	}
	if target.Kind == restore.Time {
		fmt.Fprintf(c.App.ErrWriter, "target time: %s\n", target.Time.UTC().Format("2006-01-02 15:04:05.999999 UTC"))
	}
	st, err := inventory.Load(c.Context, a)
	if err != nil {
		return err
	}
	// A refused backup is never chosen; say so, or a forged or damaged
	// newest backup would quietly make the restore start from an older one.
	for _, id := range slices.Sorted(maps.Keys(st.Refused)) {
		log.Warn("backup refused, not restored from", "backup_id", id, "err", st.Refused[id])
	}
	plan, err := restore.MakePlan(st, target, c.String("backup"))
	if err != nil {
		return err
	}
	if plan.Tablespaces, err = restore.PlanTablespaces(plan.Backup, pgdata, tsMap); err != nil {
		return err
	}
	asJSON := c.Bool("json")
	if !asJSON {
		fmt.Fprintf(c.App.Writer, "plan: backup %s (finished %s), replay WAL from %s along timeline %d (stored up to %s), fetch %s, recover to %s\n",
			plan.Backup.ID, plan.Backup.StopTime.UTC().Format(time.RFC3339), plan.WALFrom, plan.Timeline, plan.WALTo, humanBytes(plan.Bytes), plan.Target)
		for _, ts := range plan.Tablespaces {
			fmt.Fprintf(c.App.Writer, "plan: %s\n", ts)
		}
	}
	if err := restore.CheckTablespaces(pgdata, plan.Tablespaces); err != nil {
		return err
	}
	if c.Bool("dry-run") {
		if asJSON {
			return printJSON(c.App.Writer, planJSON(plan, pgdata))
		}
		return nil
	}
	s := settingsFrom(c)
	prog := startProgress(c, log, "restore", plan.Bytes, asJSON)
	res, err := restore.Execute(c.Context, restore.Job{
		Archive: a, Plan: plan, PGData: pgdata, TablespaceMap: tsMap, Force: c.Bool("force"), Jobs: c.Int("jobs"),
		Recovery: recovery, Files: map[string][]byte{restoreConfigName: restoreConf},
		Prefetch: c.Int("prefetch"), SpoolOrigin: s.Cluster + " " + s.Repo,
		Start: c.Bool("start"), Port: c.Int("port"), StartTimeout: c.Duration("start-timeout"),
		Progress: prog.Add, Logger: log,
	})
	prog.Finish()
	if err != nil {
		return err
	}
	switch {
	case asJSON:
		return printJSON(c.App.Writer, struct {
			Plan    restorePlanJSON `json:"plan"`
			Seconds float64         `json:"seconds"`
			restore.Result
		}{planJSON(plan, pgdata), res.Elapsed.Seconds(), res})
	case res.Started != nil:
		fmt.Fprintf(c.App.Writer, "recovered backup %s to %s in %s: %s\n", plan.Backup.ID, plan.Target, res.Started.Duration.Round(time.Second), res.Started.Reached)
	default:
		fmt.Fprintf(c.App.Writer, "restored backup %s into %s; start PostgreSQL to recover to %s\n", plan.Backup.ID, pgdata, plan.Target)
	}
	return nil
}

// restorePlanJSON is a restore's plan as 'restore --dry-run --json'
// prints it.
type restorePlanJSON struct {
	Backup        string    `json:"backup"`
	BackupStopped time.Time `json:"backup_stopped"`
	Timeline      uint32    `json:"timeline"`
	WALFrom       string    `json:"wal_from"`
	WALTo         string    `json:"wal_to"`
	StoredBytes   int64     `json:"stored_bytes"`
	Target        string    `json:"target"`
	PGData        string    `json:"pgdata"`
	Tablespaces   []struct {
		OID string `json:"oid"`
		Dir string `json:"dir"`
	} `json:"tablespaces"`
}

func planJSON(p restore.Plan, pgdata string) restorePlanJSON {
	out := restorePlanJSON{Backup: p.Backup.ID, BackupStopped: p.Backup.StopTime.UTC(), Timeline: p.Timeline,
		WALFrom: p.WALFrom.String(), WALTo: p.WALTo.String(), StoredBytes: p.Bytes, Target: p.Target.String(), PGData: pgdata}
	out.Tablespaces = []struct {
		OID string `json:"oid"`
		Dir string `json:"dir"`
	}{}
	for _, ts := range p.Tablespaces {
		out.Tablespaces = append(out.Tablespaces, struct {
			OID string `json:"oid"`
			Dir string `json:"dir"`
		}{ts.OID, ts.Dir})
	}
	return out
}

// restoreConfigName is the file, in the data directory, that holds the
// repository settings restore_command needs.
const restoreConfigName = "pgward-restore.yaml"

// restoreFileConfig is everything pgward writes into the data directory
// for restore_command: where the repository is and how to read and
// trust it. No secret has a field here: S3 credentials stay in the
// server's environment, and the identity is named by its path.
type restoreFileConfig struct {
	Repo          string `yaml:"repo"`
	Cluster       string `yaml:"cluster"`
	IdentityFile  string `yaml:"identity-file,omitempty"`
	S3Endpoint    string `yaml:"s3-endpoint,omitempty"`
	S3Region      string `yaml:"s3-region,omitempty"`
	S3Insecure    bool   `yaml:"s3-insecure,omitempty"`
	S3PathStyle   bool   `yaml:"s3-path-style,omitempty"`
	TrustedSigner string `yaml:"trusted-signer,omitempty"`
	AllowUnsigned bool   `yaml:"allow-unsigned,omitempty"`
}

// restoreConfig is the content of restoreConfigName. It refuses settings
// that carry credentials rather than write them into the data directory
// (and never shows them).
func restoreConfig(s settings) ([]byte, error) {
	if u, err := url.Parse(s.Repo); err == nil && (u.User != nil || u.RawQuery != "") {
		return nil, errors.New("the repository URL holds user info or a query (not shown: it may hold credentials): " +
			"restore writes the URL into the data directory for restore_command; put S3 credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY")
	}
	if strings.Contains(s.S3Endpoint, "@") {
		return nil, errors.New("--s3-endpoint holds credentials (not shown): give them in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY " +
			"(for restore_command, in the restored server's environment); restore never writes credentials into the data directory")
	}
	cfg := restoreFileConfig{Repo: s.Repo, Cluster: s.Cluster, TrustedSigner: s.TrustedSigner, AllowUnsigned: s.AllowUnsigned}
	if s.IdentityFile != "" {
		abs, err := filepath.Abs(s.IdentityFile)
		if err != nil {
			return nil, err
		}
		cfg.IdentityFile = abs
	}
	if strings.HasPrefix(s.Repo, "s3:") {
		cfg.S3Endpoint, cfg.S3Region, cfg.S3Insecure, cfg.S3PathStyle = s.S3Endpoint, s.S3Region, s.S3Insecure, s.S3PathStyle
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	return append([]byte("# written by pgward restore for restore_command\n"), b...), nil
}

// restoreCommandLine is the restore_command: this pgward, reading the
// settings in the data directory, fetching %f into %p. The paths are
// quoted for the shell PostgreSQL runs it with, and their % doubled.
func restoreCommandLine(pgdata string, prefetch int) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	cmd := restore.ShellArg(exe) + " --config " + restore.ShellArg(filepath.Join(pgdata, restoreConfigName)) + " wal-fetch"
	if prefetch == 0 {
		cmd += " --prefetch 0"
	}
	return cmd + " %f %p", nil
}

// showWindow prints, per timeline, the oldest backup's end and the newest
// stored WAL: what restore can reach.
func showWindow(c *cli.Context) error {
	a, _, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	st, err := inventory.Load(c.Context, a)
	if err != nil {
		return err
	}
	windows := inventory.Windows(st)
	if c.Bool("json") {
		if windows == nil {
			windows = []inventory.Window{}
		}
		return printJSON(c.App.Writer, windows)
	}
	for _, w := range windows {
		if w.From.IsZero() {
			fmt.Fprintf(c.App.Writer, "timeline %d: WAL up to %s (stored %s); no base backup on it\n", w.Timeline, w.ToLSN, w.To.UTC().Format(time.RFC3339))
			continue
		}
		fmt.Fprintf(c.App.Writer, "timeline %d: %s to %s (LSN %s to %s)\n", w.Timeline,
			w.From.UTC().Format(time.RFC3339), w.To.UTC().Format(time.RFC3339), w.FromLSN, w.ToLSN)
	}
	return nil
}
