package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/seal"
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
					&cli.BoolFlag{Name: "force", Usage: "shorten the stored window, or replace a stored policy that is refused (forged, or signed by a key not trusted), starting from the defaults"},
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
	trust, err := settingsFrom(c).policyTrust()
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
	trust, err := s.policyTrust()
	if err != nil {
		return err
	}
	key, err := s.signingKey()
	if err != nil {
		return err
	}
	warnUnsigned(log, key)
	p, found, err := catalog.LoadPolicy(c.Context, a.Store, a.Layout, trust)
	switch {
	case err != nil && !c.Bool("force"):
		return fmt.Errorf("%w: find out who changed it; --force replaces it, starting from the defaults", err)
	case err != nil:
		log.Warn("replacing a stored retention policy that is refused", "err", err)
		p, found = catalog.DefaultPolicy(), false
	}
	// Only what is typed here changes the policy: a value from the
	// environment or the config file (the sidecar's PGWARD_DUMP_TIMEZONE, a
	// window left in the file) is no one's decision today.
	before := p
	if typedOnCommandLine(c, flagRetentionWindow) {
		p.WindowSeconds = int64(c.Duration(flagRetentionWindow) / time.Second)
	}
	for name, field := range map[string]*int{flagKeepDaily: &p.KeepDaily, flagKeepWeekly: &p.KeepWeekly, flagKeepMonthly: &p.KeepMonthly} {
		if typedOnCommandLine(c, name) {
			*field = c.Int(name)
		}
	}
	if typedOnCommandLine(c, "timezone") {
		p.DumpTimezone = c.String("timezone")
	}
	if err := p.Validate(); err != nil {
		return err
	}
	if found && p.Window() < before.Window() && !c.Bool("force") {
		return fmt.Errorf("--retention-window %s shortens the stored window of %s: the next prune deletes what it kept; give --force to mean it",
			config.FormatDuration(p.Window()), config.FormatDuration(before.Window()))
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
// one is stored; else the command's options (tzFlag names its time zone
// option, "" when it has none). With a stored policy, an option of this
// command that says otherwise is refused when it was typed on the command
// line, and warned about, and ignored, when it came from the environment
// or the config file: a unit file's old PGWARD_PRUNE_WINDOW must not stop
// a sidecar. A tzFlag that is also a schedule's zone (the sidecar's
// --dump-timezone) is never compared: scheduleZone says so.
func retentionPolicy(ctx context.Context, c *cli.Context, store storage.Backend, l catalog.Layout, tzFlag string, scheduleZone bool) (catalog.Policy, error) {
	trust, err := settingsFrom(c).policyTrust()
	if err != nil {
		return catalog.Policy{}, err
	}
	p, found, err := catalog.LoadPolicy(ctx, store, l, trust)
	if err != nil {
		return catalog.Policy{}, fmt.Errorf("retention policy: %w", err)
	}
	var opts []catalog.PolicyOption
	add := func(field catalog.PolicyField, flag string, o catalog.PolicyOption) {
		if findFlag(c.Command.Flags, flag) == nil {
			return // this command has no such option
		}
		o.Field, o.Flag, o.Set, o.Typed = field, flag, c.IsSet(flag), typedOnCommandLine(c, flag)
		opts = append(opts, o)
	}
	add(catalog.FieldWindow, flagRetentionWindow, catalog.PolicyOption{Window: c.Duration(flagRetentionWindow)})
	add(catalog.FieldKeepDaily, flagKeepDaily, catalog.PolicyOption{N: c.Int(flagKeepDaily)})
	add(catalog.FieldKeepWeekly, flagKeepWeekly, catalog.PolicyOption{N: c.Int(flagKeepWeekly)})
	add(catalog.FieldKeepMonthly, flagKeepMonthly, catalog.PolicyOption{N: c.Int(flagKeepMonthly)})
	if tzFlag != "" {
		add(catalog.FieldDumpTimezone, tzFlag, catalog.PolicyOption{Zone: c.String(tzFlag), Schedule: scheduleZone})
	}
	p, ignored, err := catalog.ResolvePolicy(p, found, opts)
	if err != nil {
		return catalog.Policy{}, fmt.Errorf("cluster %s: %w", l.Cluster, err)
	}
	if len(ignored) > 0 {
		if log, err := settingsFrom(c).logger(c.App.ErrWriter); err == nil {
			log.Warn("retention options from the environment or the config file disagree with the repository's policy, which decides: remove them",
				"cluster", l.Cluster, "ignored", strings.Join(ignored, ", "))
		}
	}
	return p, nil
}

// typedOnCommandLine reports whether option name (or an alias) was given
// on this run's command line, not by the environment or the file.
func typedOnCommandLine(c *cli.Context, name string) bool {
	if fromConfigFile(c, name) {
		return false
	}
	f := findFlag(c.Command.Flags, name)
	if f == nil {
		return false
	}
	args, _ := c.App.Metadata[argsKey].([]string)
	for _, a := range args {
		if a == "--" {
			break
		}
		if n, _, ok := flagToken(a); ok && slices.Contains(f.Names(), n) {
			return true
		}
	}
	return false
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

// policyTrust is whom a retention policy is read from: --trusted-policy-
// signer when given (no unsigned policy then, and no writer's key), else
// the trust every object is read with.
func (s settings) policyTrust() (seal.Trust, error) {
	if s.PolicySigner == "" {
		return s.trust()
	}
	signers, err := seal.ParseTrustedSigners(s.PolicySigner)
	if err != nil {
		return seal.Trust{}, fmt.Errorf("--%s: %w", flagPolicySigner, err)
	}
	return seal.Trust{Signers: signers}, nil
}
