package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/storage"
)

// The retention options: one name each, on every command that reads them.
const (
	flagRetentionWindow = "retention-window"
	flagKeepDaily       = "keep-daily"
	flagKeepWeekly      = "keep-weekly"
	flagKeepMonthly     = "keep-monthly"
)

// retentionWindowFlag is the window option; older names stay as aliases
// (and their environment variables), so unit files keep working.
func retentionWindowFlag(usage string, aliases ...string) cli.Flag {
	envs := []string{envName(flagRetentionWindow)}
	for _, a := range aliases {
		envs = append(envs, envName(a))
	}
	return &cli.DurationFlag{Name: flagRetentionWindow, Aliases: aliases, EnvVars: envs, Value: catalog.DefaultRetentionWindow, Usage: usage}
}

// keepFlags are the dumps' GFS counts; tzFlag names their time zone option.
func keepFlags(prefix, tzFlag, tzEnv string) []cli.Flag {
	d := catalog.DefaultPolicy()
	return []cli.Flag{
		&cli.IntFlag{Name: flagKeepDaily, EnvVars: []string{"PGWARD_KEEP_DAILY"}, Value: d.KeepDaily, Usage: prefix + "keep the newest dump of each of the last `N` days"},
		&cli.IntFlag{Name: flagKeepWeekly, EnvVars: []string{"PGWARD_KEEP_WEEKLY"}, Value: d.KeepWeekly, Usage: prefix + "then of `N` ISO weeks"},
		&cli.IntFlag{Name: flagKeepMonthly, EnvVars: []string{"PGWARD_KEEP_MONTHLY"}, Value: d.KeepMonthly, Usage: prefix + "then of `N` months"},
		&cli.StringFlag{Name: tzFlag, EnvVars: []string{tzEnv}, Value: d.DumpTimezone, Usage: prefix + "time `ZONE` of the calendar days, weeks and months"},
	}
}

func retentionCommand() *cli.Command {
	return &cli.Command{
		Name:  "retention",
		Usage: "show or set the cluster's retention policy, stored in the repository and read by check, prune, stream, backup delete and dump prune",
		Description: `The retention policy is defined once, in the repository (<cluster>/policy.json,
signed like every object), so that check, prune, the sidecar, backup delete and
dump prune cannot disagree: the point-in-time recovery window and the dumps'
daily/weekly/monthly counts. Once it is stored, an option on one of those
commands that says otherwise is refused: change the policy here instead.
Without a stored policy each command takes its options (default: 7 days;
dumps 7 daily, 4 weekly, 12 monthly in Europe/Berlin).`,
		Subcommands: []*cli.Command{
			{
				Name: "show", Usage: "print the stored policy (or the defaults, when none is stored)",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print it as JSON"}},
				Action: runRetentionShow,
			},
			{
				Name: "set", Usage: "store the policy: the options given change, the rest stays as stored",
				Flags: append([]cli.Flag{
					retentionWindowFlag("keep every second of the last `WINDOW` restorable (at least 1h)"),
					&cli.BoolFlag{Name: "force", Usage: "replace a stored policy that is refused (forged, or signed by a key not trusted), starting from the defaults"},
				}, keepFlags("dumps: ", "timezone", "PGWARD_DUMP_TIMEZONE")...),
				Action: runRetentionSet,
			},
		},
	}
}

func runRetentionShow(c *cli.Context) error {
	a, _, err := archiveFor(c, false, false)
	if err != nil {
		return err
	}
	trust, err := settingsFrom(c).trust()
	if err != nil {
		return err
	}
	p, found, err := catalog.LoadPolicy(c.Context, a.Store, a.Layout, trust)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, struct {
			Cluster string `json:"cluster"`
			Stored  bool   `json:"stored"`
			catalog.Policy
		}{a.Layout.Cluster, found, p})
	}
	where := "stored in the repository, updated " + p.Updated.UTC().Format(time.RFC3339)
	if !found {
		where = "not stored: the defaults, until 'pgward retention set'"
	}
	fmt.Fprintf(c.App.Writer, "cluster %s: %s\n  point-in-time recovery window  %s\n  dumps                          %d daily, %d weekly, %d monthly (%s)\n",
		a.Layout.Cluster, where, config.FormatDuration(p.Window()), p.KeepDaily, p.KeepWeekly, p.KeepMonthly, p.DumpTimezone)
	return nil
}

func runRetentionSet(c *cli.Context) error {
	s := settingsFrom(c)
	a, log, err := archiveFor(c, false, false)
	if err != nil {
		return err
	}
	trust, err := s.trust()
	if err != nil {
		return err
	}
	key, err := s.signingKey()
	if err != nil {
		return err
	}
	warnUnsigned(log, key)
	p, _, err := catalog.LoadPolicy(c.Context, a.Store, a.Layout, trust)
	switch {
	case err != nil && !c.Bool("force"):
		return fmt.Errorf("%w: find out who changed it; --force replaces it, starting from the defaults", err)
	case err != nil:
		log.Warn("replacing a stored retention policy that is refused", "err", err)
		p = catalog.DefaultPolicy()
	}
	before := p
	if c.IsSet(flagRetentionWindow) {
		p.WindowSeconds = int64(c.Duration(flagRetentionWindow) / time.Second)
	}
	for name, field := range map[string]*int{flagKeepDaily: &p.KeepDaily, flagKeepWeekly: &p.KeepWeekly, flagKeepMonthly: &p.KeepMonthly} {
		if c.IsSet(name) {
			*field = c.Int(name)
		}
	}
	if c.IsSet("timezone") {
		p.DumpTimezone = c.String("timezone")
	}
	p.Updated = time.Now().UTC()
	if err := catalog.StorePolicy(c.Context, a.Store, a.Layout, key, p); err != nil {
		return err
	}
	if before.Window() > p.Window() {
		log.Warn("retention window shortened: the next prune deletes what the old window kept",
			"from", config.FormatDuration(before.Window()), "to", config.FormatDuration(p.Window()))
	}
	fmt.Fprintf(c.App.Writer, "cluster %s: retention policy stored: window %s; dumps %d daily, %d weekly, %d monthly (%s)\n",
		a.Layout.Cluster, config.FormatDuration(p.Window()), p.KeepDaily, p.KeepWeekly, p.KeepMonthly, p.DumpTimezone)
	return nil
}

// retentionPolicy is the policy a command acts on: the repository's when
// one is stored, and then an option of this command that says otherwise
// is refused; else the command's options (tzFlag names its time zone
// option, "" when it has none).
func retentionPolicy(ctx context.Context, c *cli.Context, store storage.Backend, l catalog.Layout, tzFlag string) (catalog.Policy, error) {
	trust, err := settingsFrom(c).trust()
	if err != nil {
		return catalog.Policy{}, err
	}
	p, found, err := catalog.LoadPolicy(ctx, store, l, trust)
	if err != nil {
		return catalog.Policy{}, fmt.Errorf("retention policy: %w", err)
	}
	type option struct {
		flag   string
		stored string
		given  func() string
		apply  func()
	}
	has := func(name string) bool { return findFlag(c.Command.Flags, name) != nil }
	opts := []option{
		{flagRetentionWindow, config.FormatDuration(p.Window()), func() string { return config.FormatDuration(c.Duration(flagRetentionWindow)) },
			func() { p.WindowSeconds = int64(c.Duration(flagRetentionWindow) / time.Second) }},
		{flagKeepDaily, strconv.Itoa(p.KeepDaily), func() string { return strconv.Itoa(c.Int(flagKeepDaily)) }, func() { p.KeepDaily = c.Int(flagKeepDaily) }},
		{flagKeepWeekly, strconv.Itoa(p.KeepWeekly), func() string { return strconv.Itoa(c.Int(flagKeepWeekly)) }, func() { p.KeepWeekly = c.Int(flagKeepWeekly) }},
		{flagKeepMonthly, strconv.Itoa(p.KeepMonthly), func() string { return strconv.Itoa(c.Int(flagKeepMonthly)) }, func() { p.KeepMonthly = c.Int(flagKeepMonthly) }},
	}
	if tzFlag != "" {
		opts = append(opts, option{tzFlag, p.DumpTimezone, func() string { return c.String(tzFlag) }, func() { p.DumpTimezone = c.String(tzFlag) }})
	}
	var disagree []string
	for _, o := range opts {
		if !has(o.flag) {
			continue
		}
		if !found {
			o.apply() // the option, or its default
			continue
		}
		if c.IsSet(o.flag) && o.given() != o.stored {
			disagree = append(disagree, fmt.Sprintf("--%s %s (the policy says %s)", o.flag, o.given(), o.stored))
		}
	}
	if len(disagree) > 0 {
		return catalog.Policy{}, fmt.Errorf("cluster %s: %s: the retention policy stored in the repository decides; change it with 'pgward retention set', or drop the option from this command, its environment and its config file",
			l.Cluster, strings.Join(disagree, ", "))
	}
	return p, p.Validate()
}

// dumpRetention is the dumps' part of a policy.
func dumpRetention(p catalog.Policy) (dump.Policy, error) {
	loc, err := time.LoadLocation(p.DumpTimezone)
	if err != nil {
		return dump.Policy{}, fmt.Errorf("dump time zone %q: %w", p.DumpTimezone, err)
	}
	d := dump.Policy{Daily: p.KeepDaily, Weekly: p.KeepWeekly, Monthly: p.KeepMonthly, Location: loc}
	return d, d.Validate()
}
