// Command pgward archives PostgreSQL WAL and restores it: compressed and
// encrypted, into a local directory or S3-compatible object storage.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	_ "time/tzdata" // backup schedules name time zones; hosts may lack zoneinfo

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/internal/config"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

// Exit statuses. wal-fetch must exit above 125 on real errors: PostgreSQL
// reads any lower status from restore_command as "file not available",
// ends recovery and promotes.
const (
	exitOK       = 0
	exitError    = 1
	exitNotFound = 1
	exitFatal    = 255
)

// statusError carries an exit status out of an action.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// withStatus gives err the exit status code, unless it already has one.
func withStatus(code int, err error) error {
	var se *statusError
	if err == nil || errors.As(err, &se) {
		return err
	}
	return &statusError{code: code, err: err}
}

// memoryLimit keeps the heap of long streams (a 1 TB backup, the
// sidecar) small: the garbage collector works harder near it. The WAL
// commands hold at most a few segments and keep Go's default, since a
// limit below their working set would only burn CPU in the collector.
const memoryLimit = 40 << 20

// walMemoryLimit sits above a WAL command's working set (one segment,
// mapped or unsealed, and its sealed form): it trims the collector's slack
// without making it run all the time.
const walMemoryLimit = 48 << 20

// limitMemory applies limit unless GOMEMLIMIT says otherwise.
func limitMemory(limit int64) {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile(os.Getenv("PGWARD_CPUPROFILE"))
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stopProfile()
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile to path (PGWARD_CPUPROFILE), for the
// speed work: `go tool pprof pgward PATH`.
func startProfile(path string) (stop func()) {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgward: PGWARD_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) (status int) {
	// Errors found before wal-fetch's action runs (a bad config file, an
	// unknown global flag, a malformed environment variable) and panics
	// must still exit above 125, or PostgreSQL would promote at the wrong
	// point.
	code := exitError
	switch {
	case slices.Contains(args[1:], "wal-fetch"):
		code = exitFatal
	case slices.Contains(args[1:], "check"):
		code = 3 // Nagios UNKNOWN: the probe could not run
	}
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "pgward: internal error: %v\n", r)
			status = code
		}
	}()
	app := newApp(stdout, stderr)
	app.Metadata = map[string]any{argsKey: slices.Clone(args)} // for --cluster all
	args, err := hoistGlobalFlags(app, args)
	if err == nil {
		err = app.RunContext(ctx, args)
	}
	if err == nil {
		return exitOK
	}
	var se *statusError
	if errors.As(err, &se) {
		if se.err != errSilent {
			fmt.Fprintf(stderr, "pgward: %v\n", se.err)
		}
		return se.code
	}
	fmt.Fprintf(stderr, "pgward: %v\n", err)
	return code
}

// errSilent ends a command with a status but no message (it was printed).
var errSilent = errors.New("")

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		rev, dirty := "", ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if len(rev) > 12 {
			return "dev-" + rev[:12] + dirty
		}
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
	}
	return "dev"
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "pgward",
		Usage:   "archive PostgreSQL WAL, compressed and encrypted, and fetch it back for recovery",
		Version: buildVersion(),
		Description: `pgward stores PostgreSQL WAL in a repository: a local directory (file:///path)
or an S3-compatible bucket (s3://bucket/prefix). Every object is compressed
with zstd and encrypted with age to X25519 recipients; the database host needs
only the public key (recipient), restore hosts hold the identity (secret key).

Every option is also an environment variable (PGWARD_<OPTION>, shown in each
command's help) and a key of the YAML file (--config, by default
/etc/pgward/pgward.yaml): a flag beats the environment, which beats the file.
Options may come before or after the command.

In postgresql.conf:
   archive_mode = on
   archive_command = 'pgward --config /etc/pgward/pgward.yaml wal-push %p'
and for recovery:
   restore_command = 'pgward --config /etc/pgward/pgward.yaml wal-fetch %f %p'

Start with:  pgward keys generate --output /secure/place/pgward.key`,
		Flags:                globalFlags(),
		Before:               loadConfig,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: true, // for the completion scripts
		Commands: []*cli.Command{
			walPushCommand(),
			walFetchCommand(),
			walPrefetchCommand(),
			streamCommand(),
			backupCommand(),
			restoreCommand(),
			checkCommand(),
			pruneCommand(),
			retentionCommand(),
			clustersCommand(),
			completionCommand(),
			manCommand(),
			verifyCommand(),
			dumpCommand(),
			keysCommand(),
		},
		Action:         unknownCommand,
		OnUsageError:   flagUsageError,               // a bad global value says what form it wants
		ExitErrHandler: func(*cli.Context, error) {}, // run() prints and exits
	}
	prepareCommands(app.Commands, nil)
	return app
}

// unknownCommand is the App's action: it runs only when no command was
// named, or an unknown one.
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		return cli.ShowAppHelp(c)
	}
	name := c.Args().First()
	var names []string
	for _, cmd := range c.App.Commands {
		if !cmd.Hidden {
			names = append(names, cmd.Name)
		}
	}
	if best := config.Suggest(name, names); best != "" {
		return fmt.Errorf("unknown command %s (did you mean %s?; see 'pgward --help')", shortQuote(name), best)
	}
	return fmt.Errorf("unknown command %s: pgward's commands are %s (see 'pgward --help')", shortQuote(name), strings.Join(names, ", "))
}

// printJSON writes v as indented JSON, for --json output.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
