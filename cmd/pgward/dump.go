package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/jobs"
	"github.com/pgward/pgward/restore"
)

func dumpCommand() *cli.Command {
	pgBin := &cli.StringFlag{Name: "pg-bin", EnvVars: []string{"PGWARD_PG_BIN"}, Usage: "run pg_dump, pg_restore, initdb from `DIR` (default: /usr/lib/postgresql/<server major>/bin, then PATH)"}
	keep := []cli.Flag{
		&cli.IntFlag{Name: "keep-daily", EnvVars: []string{"PGWARD_KEEP_DAILY"}, Value: 7, Usage: "keep the newest dump of each of the last `N` days"},
		&cli.IntFlag{Name: "keep-weekly", EnvVars: []string{"PGWARD_KEEP_WEEKLY"}, Value: 4, Usage: "then of `N` ISO weeks"},
		&cli.IntFlag{Name: "keep-monthly", EnvVars: []string{"PGWARD_KEEP_MONTHLY"}, Value: 12, Usage: "then of `N` months"},
		&cli.StringFlag{Name: "timezone", EnvVars: []string{"PGWARD_DUMP_TIMEZONE"}, Value: "Europe/Berlin", Usage: "time `ZONE` of the calendar days, weeks and months"},
	}
	return &cli.Command{
		Name:  "dump",
		Usage: "make logical dumps (pg_dump, per database, from the replica), each encrypted to its customer's key; list, restore, prune and drill them",
		Description: `Without a subcommand, dumps every connectable database of --source but the
templates (or each --database) with pg_dump in custom format, and the globals
(roles, tablespaces) with pg_dumpall --globals-only. Each dump streams through
compression and encryption into <cluster>/dumps/<database>/<id>/; dump.json is
written last, with the table count and the rows of every table read from the
dump as it passed. A failed pg_dump leaves no dump.json; pgward prints its
error and exits 1 once every other database is done.

Keys: --recipients-map FILE names each database's recipients (YAML):
   operator: age1…                 # optional: added to every dump
   default: age1…                  # databases no entry names
   databases:
     shop: age1…
     "crm_*": [age1…, age1…]       # globs: the first match wins; a name beats a glob
The globals dump is sealed to the operator (else the default). Without a map,
every dump is sealed to --recipient.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", EnvVars: []string{"PGWARD_DUMP_SOURCE"}, Usage: "connection `STRING` of the server to dump (the replica)"},
			&cli.StringSliceFlag{Name: "database", Usage: "dump only database `NAME` (repeatable)"},
			&cli.BoolFlag{Name: "no-globals", Usage: "do not dump roles and tablespaces"},
			&cli.StringFlag{Name: "recipients-map", EnvVars: []string{"PGWARD_RECIPIENTS_MAP"}, Usage: "YAML `FILE`: database name or glob → age recipients"},
			&cli.IntFlag{Name: "retries", Value: 3, Usage: "retry a dump a recovery conflict cancelled `N` times"},
			&cli.DurationFlag{Name: "retry-delay", Value: 5 * time.Second, Hidden: true},
			&cli.BoolFlag{Name: "pause-replay", Usage: "pause WAL replay on the standby while each dump runs (resumed on every exit)"},
			pgBin,
			&cli.BoolFlag{Name: "json", Usage: "print the dumps made as a JSON array"},
		},
		Action:       runDump,
		OnUsageError: flagUsageError,
		Subcommands: []*cli.Command{
			{
				Name: "list", Usage: "list dumps",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "database", Usage: "only database `NAME`"},
					&cli.BoolFlag{Name: "globals", Usage: "only the globals dumps (roles, tablespaces)"},
					&cli.BoolFlag{Name: "json", Usage: "print a JSON array of dump.json records"},
				},
				Action:       runDumpList,
				OnUsageError: flagUsageError,
			},
			{
				Name: "restore", Usage: "restore a dump into a new (or, with --force, an existing) database",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "database", Usage: "the dumped database's `NAME`"},
					&cli.StringFlag{Name: "at", Usage: "the newest dump started at or before `TIME` (RFC 3339 or YYYY-MM-DD HH:MM:SS, local time)"},
					&cli.StringFlag{Name: "id", Usage: "the dump with this `ID` (see dump list)"},
					&cli.StringFlag{Name: "into", Usage: "connection `STRING` of the target; its dbname is created"},
					&cli.BoolFlag{Name: "force", Usage: "restore into an existing non-empty database (drops and recreates the dump's objects)"},
					&cli.BoolFlag{Name: "no-owner", Usage: "give every object to the connecting role; skip privileges (for a server without the dump's roles)"},
					pgBin,
				},
				Action:       runDumpRestore,
				OnUsageError: flagUsageError,
			},
			{
				Name: "prune", Usage: "delete dumps retention does not keep (daily/weekly/monthly, per database)",
				Flags: append(append([]cli.Flag{}, keep...),
					&cli.BoolFlag{Name: "dry-run", Usage: "only say what would be deleted"},
					&cli.BoolFlag{Name: "json", Usage: "print what was kept and deleted as JSON"}),
				Action:       runDumpPrune,
				OnUsageError: flagUsageError,
			},
			{
				Name: "drill", Usage: "restore a random dump of the last week into a scratch database and check its tables and rows",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "database", Usage: "drill only database `NAME`"},
					&cli.StringFlag{Name: "id", Usage: "drill the dump with this `ID`"},
					&cli.StringFlag{Name: "drill-target", EnvVars: []string{"PGWARD_DRILL_TARGET"}, Usage: "connection `STRING` of a server to restore into (a scratch database is created and dropped); default: a throwaway local cluster"},
					pgBin,
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
				}, oneShotFlags()...),
				Action:       runDumpDrill,
				OnUsageError: flagUsageError,
			},
		},
	}
}

// dumpKeys resolves whom dumps are sealed to: the map, or --recipient.
func dumpKeys(s settings, mapFile string) (dump.KeySource, error) {
	if mapFile != "" {
		if s.NoEncryption {
			return nil, errors.New("--no-encryption and --recipients-map contradict each other: choose one")
		}
		return dump.LoadKeyMap(mapFile)
	}
	if _, err := s.sealer(); err != nil { // the same rules as every other write
		return nil, err
	}
	r, err := dump.SingleRecipients(s.Recipient)
	if err != nil {
		return nil, err
	}
	return dump.Fixed(r), nil
}

func dumpCatalog(c *cli.Context) (dump.Catalog, error) {
	s := settingsFrom(c)
	log, err := s.logger(c.App.ErrWriter)
	if err != nil {
		return dump.Catalog{}, err
	}
	store, layout, err := s.openRepo()
	if err != nil {
		return dump.Catalog{}, err
	}
	// Dumps are signed by hosts that write and checked by hosts that read.
	signer, err := s.signingKey()
	if err != nil {
		return dump.Catalog{}, err
	}
	trust, err := s.trust()
	if err != nil {
		return dump.Catalog{}, err
	}
	return dump.Catalog{Store: store, Layout: layout, Logger: log, Trust: &trust, Signer: signer}, nil
}

func runDump(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unknown dump subcommand %q (list, restore, prune, drill)", c.Args().First())
	}
	limitMemory(memoryLimit)
	source, err := connFlag(c, "source")
	if err != nil {
		return err
	}
	if source == "" {
		return errors.New("give --source (or PGWARD_DUMP_SOURCE, or dump-source: in the --config file): the connection string of the server to dump, typically the replica")
	}
	if c.Int("retries") < 0 {
		return errors.New("--retries cannot be negative")
	}
	cat, err := dumpCatalog(c)
	if err != nil {
		return err
	}
	keys, err := dumpKeys(settingsFrom(c), c.String("recipients-map"))
	if err != nil {
		return err
	}
	now, err := clock()
	if err != nil {
		return err
	}
	cfg := dump.Config{
		Catalog: cat, Source: source, Databases: c.StringSlice("database"), Globals: !c.Bool("no-globals"),
		Keys: keys, Tools: dump.Tools{Dir: c.String("pg-bin")}, Retries: c.Int("retries"), RetryDelay: c.Duration("retry-delay"),
		PauseReplay: c.Bool("pause-replay"), Now: now,
	}
	prog := startProgress(c, cat.Logger, "dump", 0, c.Bool("json"))
	defer prog.Finish()
	cfg.Progress = func(db string, done, total int64) { prog.Update(done, total) }
	var res *dump.Result
	runErr := runOneShot(c, cat.Logger, "dump", cat.Layout.Cluster, func(ctx context.Context) (jobs.Outcome, error) {
		var err error
		if res, err = dump.Run(ctx, cfg); err != nil {
			return jobs.Outcome{}, err
		}
		return dumpOutcome(res), res.Err()
	})
	if res == nil {
		return runErr
	}
	if c.Bool("json") {
		if res.Dumps == nil {
			res.Dumps = []*dump.Info{}
		}
		if err := printJSON(c.App.Writer, res.Dumps); err != nil {
			return err
		}
	} else {
		for _, d := range res.Dumps {
			fmt.Fprintf(c.App.Writer, "dumped %s: %s, %s stored, %d tables, %d rows, in %s\n", d.Name(), humanBytes(d.DataBytes),
				humanBytes(d.StoredBytes), d.Tables, d.Rows, d.EndTime.Sub(d.StartTime).Round(time.Second))
		}
	}
	for _, f := range res.Failed {
		fmt.Fprintf(c.App.ErrWriter, "pgward: dump of %s failed: %v\n", f.Database, f.Err)
	}
	return runErr
}

func runDumpList(c *cli.Context) error {
	cat, err := dumpCatalog(c)
	if err != nil {
		return err
	}
	dir := ""
	switch {
	case c.IsSet("database") && c.Bool("globals"):
		return errors.New("give --database or --globals, not both")
	case c.IsSet("database"):
		dir = dump.DatabaseDir(c.String("database"))
	case c.Bool("globals"):
		dir = catalog.GlobalsDumpDir
	}
	dumps, err := cat.List(c.Context, dir)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if dumps == nil {
			dumps = []*dump.Info{}
		}
		return printJSON(c.App.Writer, dumps)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tID\tSTARTED (UTC)\tDURATION\tDATA\tSTORED\tTABLES\tROWS\tKEYS")
	for _, d := range dumps {
		keys := "none (unencrypted)"
		if len(d.Recipients) > 0 {
			short := make([]string, len(d.Recipients))
			for i, k := range d.Recipients {
				short[i] = k[:min(len(k), 12)] + "…"
			}
			keys = strings.Join(short, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.Name(), d.ID, d.StartTime.Format("2006-01-02 15:04:05"),
			d.EndTime.Sub(d.StartTime).Round(time.Second), humanBytes(d.DataBytes), humanBytes(d.StoredBytes), d.Tables, d.Rows, keys)
	}
	return tw.Flush()
}

func runDumpRestore(c *cli.Context) error {
	limitMemory(memoryLimit)
	db := c.String("database")
	if db == "" {
		return errors.New("give --database NAME: the database whose dump to restore (see 'pgward dump list')")
	}
	into, err := connFlag(c, "into")
	if err != nil {
		return err
	}
	if into == "" {
		return errors.New("give --into: the connection string of the target server, with the dbname to create (e.g. 'host=/var/run/postgresql dbname=shop_restored')")
	}
	if c.IsSet("at") && c.IsSet("id") {
		return errors.New("give --at or --id, not both")
	}
	var at time.Time
	if v := c.String("at"); v != "" {
		t, err := restore.ParseTime(v, time.Local)
		if err != nil {
			return fmt.Errorf("--at: %w", err)
		}
		at = t
	}
	cat, err := dumpCatalog(c)
	if err != nil {
		return err
	}
	opener, err := settingsFrom(c).opener()
	if err != nil {
		return err
	}
	info, err := cat.Find(c.Context, db, c.String("id"), at)
	if err != nil {
		return err
	}
	cfg := dump.RestoreConfig{Catalog: cat, Opener: opener, Dump: info, Into: into, Force: c.Bool("force"),
		NoOwner: c.Bool("no-owner"), Tools: dump.Tools{Dir: c.String("pg-bin")}}
	prog := startProgress(c, cat.Logger, "dump restore", info.StoredBytes, false)
	defer prog.Finish()
	cfg.Progress = prog.Update
	begun := time.Now()
	if err := dump.Restore(c.Context, cfg); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "restored dump %s of %s (started %s) in %s\n", info.ID, info.Name(),
		info.StartTime.Format(time.RFC3339), time.Since(begun).Round(time.Millisecond))
	return nil
}

// dumpPolicy is the dumps' retention: the repository's policy, or the
// --keep-* options in the time zone of option tzFlag.
func dumpPolicy(ctx context.Context, c *cli.Context, cat dump.Catalog, tzFlag string, scheduleZone bool) (dump.Policy, error) {
	p, err := retentionPolicy(ctx, c, cat.Store, cat.Layout, tzFlag, scheduleZone)
	if err != nil {
		return dump.Policy{}, err
	}
	return dumpRetention(p)
}

func runDumpPrune(c *cli.Context) error {
	cat, err := dumpCatalog(c)
	if err != nil {
		return err
	}
	policy, err := dumpPolicy(c.Context, c, cat, "timezone", false)
	if err != nil {
		return err
	}
	now, err := clock()
	if err != nil {
		return err
	}
	return pruneDumps(c, cat, policy, now(), c.Bool("dry-run"), c.Bool("json"), c.App.Writer)
}

func pruneDumps(c *cli.Context, cat dump.Catalog, policy dump.Policy, now time.Time, dryRun, asJSON bool, out io.Writer) error {
	res, err := cat.Prune(c.Context, policy, now, dryRun)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(out, res)
	}
	verb := "deleted"
	if dryRun {
		verb = "would delete"
	}
	for _, e := range res.Deleted {
		fmt.Fprintf(out, "%s %s %s\n", verb, e.Database, e.ID)
	}
	for _, p := range res.Leftover {
		fmt.Fprintf(out, "%s unfinished dump %s\n", verb, p)
	}
	fmt.Fprintf(out, "kept %d dumps, %s %d, %d unfinished\n", len(res.Kept), verb, len(res.Deleted), len(res.Leftover))
	return nil
}

func runDumpDrill(c *cli.Context) error {
	limitMemory(memoryLimit)
	target, err := connFlag(c, "drill-target")
	if err != nil {
		return err
	}
	cat, err := dumpCatalog(c)
	if err != nil {
		return err
	}
	s := settingsFrom(c)
	if s.IdentityFile == "" {
		return errors.New("a drill decrypts dumps: give --identity-file (or PGWARD_IDENTITY_FILE) with the identities of the dumps' recipients")
	}
	opener, err := s.opener()
	if err != nil {
		return err
	}
	now, err := clock()
	if err != nil {
		return err
	}
	m := newDrillMetrics(nil)
	prog := startProgress(c, cat.Logger, "dump drill", 0, c.Bool("json"))
	defer prog.Finish()
	var rep *dump.DrillReport
	derr := runOneShot(c, cat.Logger, "dump-drill", cat.Layout.Cluster, func(ctx context.Context) (jobs.Outcome, error) {
		var err error
		rep, err = dump.Drill(ctx, dump.DrillConfig{Catalog: cat, Opener: opener, Database: c.String("database"), ID: c.String("id"),
			Target: target, Tools: dump.Tools{Dir: c.String("pg-bin")}, Now: now, Progress: prog.Update})
		m.observe(rep)
		return drillOutcome(rep), err
	}, m.collectors()...)
	if rep == nil {
		return derr
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else {
		printDrill(c.App.Writer, rep)
	}
	if derr != nil {
		return withStatus(exitError, errSilent)
	}
	return nil
}

func printDrill(w io.Writer, rep *dump.DrillReport) {
	status := "PASSED"
	if !rep.OK {
		status = "FAILED"
	}
	fmt.Fprintf(w, "drill %s", status)
	if rep.DumpID != "" {
		fmt.Fprintf(w, ": dump %s of %s (%s) restored into %s on %s", rep.DumpID, rep.Database,
			rep.DumpTime.Format(time.RFC3339), rep.Scratch, rep.Target)
	}
	fmt.Fprintf(w, " in %s\n", rep.Duration.Round(time.Millisecond))
	if rep.DumpID != "" {
		fmt.Fprintf(w, "  tables: %d restored, %d dumped; rows: %d restored, %d dumped\n", rep.TablesSeen, rep.Tables, rep.RowsSeen, rep.Rows)
	}
	if rep.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", rep.Error)
	}
}

// drillMetrics export drill outcomes: the sidecar serves them, a one-off
// drill can write them for node_exporter.
type drillMetrics struct {
	lastRun, ok prometheus.Gauge
	// lastSuccess has no series until a drill passes: a textfile written
	// after a failure keeps the success before it (jobs.WriteTextfile).
	lastSuccess *prometheus.GaugeVec
	failures    prometheus.Counter
}

func newDrillMetrics(reg prometheus.Registerer) *drillMetrics {
	m := &drillMetrics{
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pgward", Name: "dump_drill_last_run_timestamp_seconds",
			Help: "When the last restore drill of a dump ended."}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pgward", Name: "dump_drill_last_success_timestamp_seconds",
			Help: "When the last restore drill that passed ended."}, nil),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pgward", Name: "dump_drill_failures_total",
			Help: "Restore drills of dumps that failed."}),
		ok: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pgward", Name: "dump_drill_ok",
			Help: "1 if the last restore drill passed, 0 if it failed."}),
	}
	if reg != nil {
		reg.MustRegister(m.collectors()...)
	}
	return m
}

func (m *drillMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.lastRun, m.lastSuccess, m.failures, m.ok}
}

func (m *drillMetrics) observe(rep *dump.DrillReport) {
	m.lastRun.SetToCurrentTime()
	if rep.OK {
		m.lastSuccess.WithLabelValues().SetToCurrentTime()
		m.ok.Set(1)
		return
	}
	m.failures.Inc()
	m.ok.Set(0)
}
