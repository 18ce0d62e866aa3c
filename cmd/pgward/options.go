package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/internal/config"
)

// The configuration model (docs/decisions/20261202_configuration_model.md):
// every option is a flag, an environment variable and a YAML key. A flag
// beats the environment, which beats the file; in the file a cluster's
// settings beat the rest, and a command's section beats the top.

// defaultConfigFile is read when neither --config nor PGWARD_CONFIG names
// a file, if it exists. PGWARD_CONFIG set to "" reads none.
const defaultConfigFile = "/etc/pgward/pgward.yaml"

// typedOnly are the options never read from the environment or the file:
// an override of a refusal must be typed for the one run it is meant for,
// and so must a run that only shows (a PGWARD_DRY_RUN left in a cron
// job's environment would make every prune a silent no-op).
var typedOnly = []string{"force", "help", "dry-run", "show-window"}

// envName is the environment variable of an option that names none.
func envName(flag string) string {
	return "PGWARD_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// topKey is the file's top-level key of an option whose environment
// variable is env: backup's --source reads PGWARD_BACKUP_SOURCE, so it is
// backup-source: at the top (and source: inside backup:).
func topKey(env string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "PGWARD_")), "_", "-")
}

func flagName(f cli.Flag) string { return f.Names()[0] }

func flagEnv(f cli.Flag) string {
	if ef, ok := f.(interface{ GetEnvVars() []string }); ok {
		if envs := ef.GetEnvVars(); len(envs) > 0 {
			return envs[0]
		}
	}
	return ""
}

func flagKind(f cli.Flag) config.Kind {
	switch {
	case isBool(f):
		return config.Bool
	case slices.Contains(configListKeys, flagName(f)):
		return config.List
	}
	if _, ok := f.(*cli.StringSliceFlag); ok {
		return config.List
	}
	return config.String
}

func isBool(f cli.Flag) bool { _, ok := f.(*cli.BoolFlag); return ok }

// configListKeys are the options the file may give as a YAML list; the
// items are joined with commas.
var configListKeys = []string{flagRecipient, flagTrustedSigner, flagPolicySigner}

// prepareCommands gives every option of every command an environment
// variable (PGWARD_<NAME>) where it has none, lets durations take days
// (7d), and has each command apply the configuration to its own options
// once they are parsed.
func prepareCommands(cmds []*cli.Command, path []string) {
	for _, cmd := range cmds {
		cmdPath := append(slices.Clone(path), cmd.Name)
		var required []string
		for i, f := range cmd.Flags {
			if d, ok := f.(*cli.DurationFlag); ok {
				f = withDays(d)
				cmd.Flags[i] = f
			}
			// cli checks required options before Before, where the
			// file may still give them: check them after it.
			if sf, ok := f.(*cli.StringFlag); ok && sf.Required {
				sf.Required = false
				required = append(required, sf.Name)
			}
			if flagEnv(f) == "" && !slices.Contains(typedOnly, flagName(f)) {
				setEnvVars(f, envName(flagName(f)))
			}
		}
		if cmd.OnUsageError == nil {
			cmd.OnUsageError = flagUsageError
		}
		if slices.Contains(perClusterCommands, strings.Join(cmdPath, " ")) && cmd.Action != nil {
			cmd.Action = perCluster(cmd.Action)
		}
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if err := applyConfig(c, cmdPath, c.Command.Flags); err != nil {
				return err
			}
			for _, name := range required {
				if !c.IsSet(name) {
					return fmt.Errorf("'%s' needs --%s (or %s, or %s: in the config file's %s section)",
						c.Command.HelpName, name, envName(name), name, strings.Join(cmdPath, "."))
				}
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
		prepareCommands(cmd.Subcommands, cmdPath)
	}
}

func setEnvVars(f cli.Flag, env string) {
	switch f := f.(type) {
	case *cli.StringFlag:
		f.EnvVars = []string{env}
	case *cli.BoolFlag:
		f.EnvVars = []string{env}
	case *cli.IntFlag:
		f.EnvVars = []string{env}
	case *cli.Int64Flag:
		f.EnvVars = []string{env}
	case *cli.UintFlag:
		f.EnvVars = []string{env}
	case *cli.Float64Flag:
		f.EnvVars = []string{env}
	case *cli.GenericFlag:
		f.EnvVars = []string{env}
	case *cli.StringSliceFlag:
		f.EnvVars = []string{env}
	default:
		panic(fmt.Sprintf("pgward: option --%s: no environment variable for a %T", flagName(f), f))
	}
}

// durationValue is a duration that also takes days and weeks (7d, 1d12h).
// String is Go's form, which cli's Context.Duration parses back.
type durationValue struct{ d time.Duration }

func (v *durationValue) Set(s string) error {
	d, err := config.ParseDuration(s)
	if err != nil {
		return err
	}
	v.d = d
	return nil
}

func (v *durationValue) String() string { return v.d.String() }

// withDays turns a duration option into one that takes days too.
func withDays(f *cli.DurationFlag) *cli.GenericFlag {
	return &cli.GenericFlag{
		Name: f.Name, Aliases: f.Aliases, Usage: f.Usage, EnvVars: f.EnvVars, Hidden: f.Hidden, Category: f.Category,
		Value: &durationValue{d: f.Value}, DefaultText: config.FormatDuration(f.Value),
	}
}

func isDuration(f cli.Flag) bool {
	g, ok := f.(*cli.GenericFlag)
	if !ok {
		return false
	}
	_, ok = g.Value.(*durationValue)
	return ok
}

// schemaOf describes the configuration the app takes, for the file's
// parser: the global options and each command's, where every option is
// also known at the top by its environment name.
func schemaOf(app *cli.App) *config.Schema {
	root := &config.Schema{Options: map[string]config.Kind{}}
	for _, f := range app.Flags {
		if name := flagName(f); name != flagConfig && name != flagConfigDir {
			root.Options[name] = flagKind(f)
		}
	}
	var walk func(cmds []*cli.Command) map[string]*config.Schema
	walk = func(cmds []*cli.Command) map[string]*config.Schema {
		out := map[string]*config.Schema{}
		for _, cmd := range cmds {
			s := &config.Schema{Options: map[string]config.Kind{}, Commands: walk(cmd.Subcommands)}
			for _, f := range cmd.Flags {
				name := flagName(f)
				if slices.Contains(typedOnly, name) {
					continue
				}
				s.Options[name] = flagKind(f)
				if env := flagEnv(f); env != "" {
					root.Options[topKey(env)] = flagKind(f)
				}
			}
			out[cmd.Name] = s
		}
		return out
	}
	root.Commands = walk(app.Commands)
	return root
}

// globalKeys are the options read before the command is known: only the
// top of the file or of a cluster may set them.
func globalKeys(app *cli.App) []string {
	var keys []string
	for _, f := range app.Flags {
		keys = append(keys, flagName(f))
	}
	return keys
}

// configState is what the file gave, kept in the App's Metadata for the
// commands' Before and for connFlag.
type configState struct {
	cfg        *config.Config
	cluster    string
	confDir    string            // where the clusters' own files are
	fromConfig map[string]string // option → where in the file it was set
}

const configStateKey = "pgward.config"

func stateOf(app *cli.App) *configState {
	st, _ := app.Metadata[configStateKey].(*configState)
	return st
}

// loadConfig reads the configuration file (and the cluster's own file in
// conf.d) and applies the global options that neither a flag nor the
// environment set. It is the App's Before.
func loadConfig(c *cli.Context) error {
	path := c.String(flagConfig)
	explicit := c.IsSet(flagConfig)
	if !explicit {
		if _, set := os.LookupEnv("PGWARD_CONFIG"); !set {
			path = defaultConfigFile
		}
	}
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	switch {
	case err != nil && !explicit && errors.Is(err, fs.ErrPermission):
		// The sidecar's file, mode 0600, on a host whose archive_command
		// runs as another user with its settings in the environment.
		fmt.Fprintf(c.App.ErrWriter, "pgward: warning: %s is not readable by this user, so it is not read; give --config to read a file\n", path)
		data = nil
	case err != nil && (explicit || !errors.Is(err, fs.ErrNotExist)):
		return fmt.Errorf("config file: %w", err)
	case err != nil:
		data = nil // no default file: conf.d may still hold the cluster's
	}
	// wal-push and wal-fetch run once per segment: without a file (the
	// default one absent) there is nothing to parse, and no schema to
	// build, unless a conf.d may hold the cluster's settings.
	dir := c.String(flagConfigDir)
	if dir == "" {
		dir = filepath.Join(filepath.Dir(path), "conf.d")
	}
	if data == nil {
		if _, err := os.Stat(dir); err != nil {
			return nil
		}
	}
	schema, globals := schemaOf(c.App), globalKeys(c.App)
	cfg, err := config.Parse(path, data, schema, globals)
	if err != nil {
		return fmt.Errorf("config file %w", err)
	}
	for _, name := range cfg.Clusters() {
		if err := catalog.ValidateClusterName(name); err != nil || name == allClusters {
			return fmt.Errorf("config file %s: clusters: %q is not a cluster name (letters, digits, '-', '_' and '.'; not %q, which names them all)", path, name, allClusters)
		}
	}
	cluster := c.String(flagCluster)
	if !c.IsSet(flagCluster) && cfg.Cluster() != "" {
		cluster = cfg.Cluster()
	}
	// An invalid name is refused when the repository is opened; it never
	// becomes a path here.
	if cluster != allClusters && catalog.ValidateClusterName(cluster) == nil {
		file := filepath.Join(dir, cluster+".yaml")
		data, err := os.ReadFile(file)
		switch {
		case err == nil:
			if err := cfg.AddCluster(cluster, file, data, schema, globals); err != nil {
				return fmt.Errorf("config file %w", err)
			}
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("config file: %w", err)
		}
	}
	st := &configState{cfg: cfg, cluster: cluster, confDir: dir, fromConfig: map[string]string{}}
	if c.App.Metadata == nil {
		c.App.Metadata = map[string]any{}
	}
	c.App.Metadata[configStateKey] = st
	return applyConfig(c, nil, c.App.Flags)
}

// applyConfig sets the options in flags that neither a flag nor the
// environment set from the configuration, for the command at path.
func applyConfig(c *cli.Context, path []string, flags []cli.Flag) error {
	st := stateOf(c.App)
	if st == nil {
		return nil
	}
	for _, f := range flags {
		name := flagName(f)
		if slices.Contains(typedOnly, name) || name == flagConfig || name == flagConfigDir || c.IsSet(name) {
			continue
		}
		env := flagEnv(f)
		if env == "" {
			env = envName(name)
		}
		v, ok := st.cfg.Lookup(st.cluster, path, name, topKey(env))
		if !ok {
			continue
		}
		if err := c.Set(name, v.Text); err != nil {
			if isDuration(f) {
				return fmt.Errorf("config file %s: key %s: %w", v.Where, name, err)
			}
			return fmt.Errorf("config file %s: key %s: want %s", v.Where, name, flagWants([]cli.Flag{f}, name))
		}
		st.fromConfig[name] = v.Where
	}
	return nil
}

// fromConfigFile reports whether option name got its value from the file.
func fromConfigFile(c *cli.Context, name string) bool {
	st := stateOf(c.App)
	if st == nil {
		return false
	}
	_, ok := st.fromConfig[name]
	return ok
}

// hoistGlobalFlags moves the global options found after the command
// (pgward backup list --cluster shop) before it, where cli parses them, so
// options are accepted in any position. A command's own option of the same
// name stays where it is, and so does everything after "--".
func hoistGlobalFlags(app *cli.App, args []string) ([]string, error) {
	// Shell completion asks with its flag last: it must stay last, and
	// never be taken as an option's value, or the command would run.
	if len(args) < 2 || slices.Contains(args, "--generate-bash-completion") {
		return args, nil
	}
	globals, rest := []string{}, []string{}
	cmds, local := app.Commands, []cli.Flag(nil)
	inCommand, positional := false, false
	commandAt := -1 // where in rest the command's name is
	for i := 1; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		if name, hasValue, ok := flagToken(a); ok {
			f := findFlag(local, name)
			into := &rest
			if f == nil && inCommand {
				if g := findFlag(app.Flags, name); g != nil {
					f, into = g, &globals
				}
			}
			*into = append(*into, a)
			if f != nil && !isBool(f) && !hasValue {
				if i+1 == len(args) {
					if into == &globals {
						return nil, fmt.Errorf("--%s needs a value (see 'pgward --help')", name)
					}
					continue // the command says it needs one
				}
				i++
				*into = append(*into, args[i])
			}
			if !inCommand && f == nil {
				// A global before the command: take its value along.
				if g := findFlag(app.Flags, name); g != nil && !isBool(g) && !hasValue && i+1 < len(args) {
					i++
					rest = append(rest, args[i])
				}
			}
			continue
		}
		rest = append(rest, a)
		if positional {
			continue
		}
		if cmd := findCommand(cmds, a); cmd != nil {
			if !inCommand {
				commandAt = len(rest) - 1
			}
			cmds, local, inCommand = cmd.Subcommands, cmd.Flags, true
			continue
		}
		if inCommand {
			positional = true // the command's arguments: no more subcommands
		}
	}
	if commandAt < 0 {
		return args, nil
	}
	out := append([]string{args[0]}, rest[:commandAt]...)
	out = append(out, globals...)
	return append(out, rest[commandAt:]...), nil
}

// flagToken splits -name, --name and --name=value.
func flagToken(a string) (name string, hasValue, ok bool) {
	if len(a) < 2 || a[0] != '-' {
		return "", false, false
	}
	name = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
	if name == "" || name[0] == '-' {
		return "", false, false
	}
	name, _, hasValue = strings.Cut(name, "=")
	return name, hasValue, true
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return f
		}
	}
	return nil
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}
