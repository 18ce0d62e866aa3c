package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/internal/conninfo"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/fs"
	"github.com/pgward/pgward/storage/s3"
)

// Global settings, whose names are a contract (docs/operations.md §2). Each is a
// flag, an environment variable and a key of the --config YAML file.
const (
	flagConfig       = "config"
	flagConfigDir    = "config-dir"
	flagRepo         = "repo"
	flagCluster      = "cluster"
	flagRecipient    = "recipient"
	flagIdentityFile = "identity-file"
	flagNoEncryption = "no-encryption"
	flagS3Endpoint   = "s3-endpoint"
	flagS3Region     = "s3-region"
	flagS3Insecure   = "s3-insecure"
	flagS3PathStyle  = "s3-path-style"
	flagLogLevel     = "log-level"
	// Authenticity: writers sign what they store, readers trust signers.
	flagSigningKeyFile = "signing-key-file"
	flagTrustedSigner  = "trusted-signer"
	flagAllowUnsigned  = "allow-unsigned"
	// Who may set the retention policy, which steers what prune deletes.
	flagPolicySigner = "trusted-policy-signer"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, EnvVars: []string{"PGWARD_CONFIG"}, DefaultText: defaultConfigFile + ", if it exists", Usage: "read settings from this YAML `FILE`: options at the top (repo: s3://bucket/pg), a command's in its section (backup: {checkpoint: fast}), a cluster's under clusters: NAME"},
		&cli.StringFlag{Name: flagConfigDir, EnvVars: []string{"PGWARD_CONFIG_DIR"}, DefaultText: "conf.d beside the config file", Usage: "read the cluster's own settings from `DIR`/CLUSTER.yaml (shaped as the config file, without clusters:)"},
		&cli.StringFlag{Name: flagRepo, EnvVars: []string{"PGWARD_REPO"}, Usage: "repository `URL`: file:///var/lib/pgward/repo or s3://bucket/prefix"},
		&cli.StringFlag{Name: flagCluster, EnvVars: []string{"PGWARD_CLUSTER"}, Value: catalog.DefaultCluster, Usage: "cluster `NAME` inside the repository; one per PostgreSQL system"},
		&cli.StringFlag{Name: flagRecipient, EnvVars: []string{"PGWARD_RECIPIENT"}, Usage: "age public key(s) to encrypt to, comma-separated (`age1…`, from 'pgward keys generate')"},
		&cli.StringFlag{Name: flagIdentityFile, EnvVars: []string{"PGWARD_IDENTITY_FILE"}, Usage: "age identity `FILE` to decrypt with (restore hosts only)"},
		&cli.BoolFlag{Name: flagNoEncryption, EnvVars: []string{"PGWARD_NO_ENCRYPTION"}, Usage: "store objects compressed but NOT encrypted (explicit opt-out)"},
		&cli.StringFlag{Name: flagS3Endpoint, EnvVars: []string{"PGWARD_S3_ENDPOINT"}, Usage: "S3 endpoint `HOST[:PORT]` or http(s)://host[:port] (default s3.amazonaws.com)"},
		&cli.StringFlag{Name: flagS3Region, EnvVars: []string{"PGWARD_S3_REGION"}, Usage: "S3 `REGION` (default us-east-1)"},
		&cli.BoolFlag{Name: flagS3Insecure, EnvVars: []string{"PGWARD_S3_INSECURE"}, Usage: "talk to the S3 endpoint over plain HTTP, without TLS"},
		&cli.BoolFlag{Name: flagS3PathStyle, EnvVars: []string{"PGWARD_S3_PATH_STYLE"}, Usage: "address buckets path-style (endpoint/bucket/key), as most self-hosted stores need"},
		&cli.StringFlag{Name: flagSigningKeyFile, EnvVars: []string{"PGWARD_SIGNING_KEY_FILE"}, Usage: "sign every stored object with the Ed25519 key in `FILE` (hosts that write; from 'pgward keys generate --signing')"},
		&cli.StringFlag{Name: flagTrustedSigner, EnvVars: []string{"PGWARD_TRUSTED_SIGNER"}, Usage: "accept only objects signed by these public keys, comma-separated (`pgwsig1…`; hosts that read)"},
		&cli.StringFlag{Name: flagPolicySigner, EnvVars: []string{"PGWARD_TRUSTED_POLICY_SIGNER"}, Usage: "accept a retention policy (policy.json) only when signed by one of these public keys (`pgwsig1…`: the operators', not the database hosts'), so a host that may write cannot shorten what prune keeps"},
		&cli.BoolFlag{Name: flagAllowUnsigned, EnvVars: []string{"PGWARD_ALLOW_UNSIGNED"}, Usage: "with --trusted-signer: still read objects that carry no signature (a repository written before signing), with a warning"},
		&cli.StringFlag{Name: flagLogLevel, EnvVars: []string{"PGWARD_LOG_LEVEL"}, Value: "info", Usage: "log `LEVEL`: debug, info, warn or error"},
		withDays(&cli.DurationFlag{Name: flagProgressInterval, EnvVars: []string{"PGWARD_PROGRESS_INTERVAL"}, Value: defaultProgressInterval,
			Usage: "when standard error is not a terminal, log the progress of long work (backup, restore, verify, dump restore) this often"}),
	}
}

// shortQuote quotes a value that is no secret, cut to a readable length.
func shortQuote(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}

// isBoolFlag reports whether flags holds a boolean flag called name.
func isBoolFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if _, ok := f.(*cli.BoolFlag); ok && slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// connFlag returns the connection string the command's flag name gives:
// from the command line, then the flag's environment variable, then the
// config file (connConfigKeys). A password written on the command line is
// refused (issue 11): every user of the host reads a process's arguments
// in ps, and the sidecar runs for months. ~/.pgpass, PGPASSFILE,
// PGPASSWORD, the flag's environment variable and the config file stay
// allowed, since none of them shows in ps.
func connFlag(c *cli.Context, name string) (string, error) {
	v := c.String(name)
	env := flagEnvVar(c, name)
	if fromConfigFile(c, name) {
		return v, nil
	}
	if c.IsSet(name) {
		// urfave/cli does not say where a value came from: one equal to
		// the flag's environment variable came from there (or the
		// command line repeats it, and then ps shows nothing new).
		if ev, ok := os.LookupEnv(env); env != "" && ok && ev == v {
			return v, nil
		}
		if conninfo.HasPassword(v) {
			return "", passwordOnCommandLine(name, env)
		}
		return v, nil
	}
	return v, nil
}

// parseConn parses the connection string of flag name as pgconn does. Its
// error shows the string (pgconn hides what it can recognize as a
// password) unless the string holds a password, which pgconn's best effort
// may miss ("password = 'a b'").
func parseConn(name, s string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(s)
	if err != nil {
		const want = "write host=… port=… user=… dbname=… or postgres://user@host:port/dbname"
		switch {
		case conninfo.HasPassword(s):
			return nil, fmt.Errorf("--%s: invalid connection string (not shown: it holds a password); %s", name, want)
		case len(s) > 512:
			return nil, fmt.Errorf("--%s: invalid connection string (%d bytes, not shown); %s", name, len(s), want)
		}
		return nil, fmt.Errorf("--%s: %w", name, err)
	}
	return cfg, nil
}

// passwordOnCommandLine is connFlag's refusal. It never shows the string.
func passwordOnCommandLine(name, env string) error {
	where := "put the password in ~/.pgpass (or the file PGPASSFILE names) or in PGPASSWORD"
	if env != "" {
		where += fmt.Sprintf(", or give the whole connection string in %s or as %s: in the --config file", env, topKey(env))
	}
	return fmt.Errorf("--%s holds a password (not shown): refused, because every user of this host can read a command line (ps) "+
		"for as long as pgward runs; remove it from --%s and %s", name, name, where)
}

// flagEnvVar returns the first environment variable of the command's
// flag name, or "".
func flagEnvVar(c *cli.Context, name string) string {
	if c.Command == nil {
		return ""
	}
	for _, f := range c.Command.Flags {
		if ef, ok := f.(interface{ GetEnvVars() []string }); ok && slices.Contains(f.Names(), name) {
			if envs := ef.GetEnvVars(); len(envs) > 0 {
				return envs[0]
			}
		}
	}
	return ""
}

// flagUsageError is an OnUsageError for urfave/cli: a value a flag cannot
// take, from the command line or the environment, is reported with the
// form the flag wants (urfave/cli says only "parse error" or quotes
// strconv). Other usage errors pass unchanged.
func flagUsageError(c *cli.Context, err error, _ bool) error {
	msg := err.Error()
	var flags []cli.Flag
	if c.Command != nil {
		flags = c.Command.Flags
	}
	if c.App != nil {
		flags = append(slices.Clone(flags), c.App.Flags...)
	}
	// could not parse "maybe" as bool value from environment variable "PGWARD_NO_ENCRYPTION" for flag no-encryption: …
	if m := envParseError.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("environment variable %s (for --%s): want %s, got %s", m[3], m[4], flagWants(flags, m[4]), m[1])
	}
	// could not parse "soon" from environment variable "PGWARD_WINDOW" as value for flag window: …
	if m := envGenericError.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("environment variable %s (for --%s): want %s, got %s", m[2], m[3], flagWants(flags, m[3]), m[1])
	}
	// invalid boolean value "maybe" for -force: parse error
	// invalid value "x" for flag -keep-daily: parse error
	if m := argParseError.FindStringSubmatch(msg); m != nil {
		return fmt.Errorf("--%s %s: want %s", m[2], m[1], flagWants(flags, m[2]))
	}
	command := "pgward"
	if c.Command != nil && c.Command.HelpName != "" {
		command = c.Command.HelpName
	}
	// flag provided but not defined: -frob
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Errorf("unknown option --%s for '%s' (see '%s --help')", strings.TrimPrefix(name, "-"), command, command)
	}
	// flag needs an argument: -cluster
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Errorf("--%s needs a value (see '%s --help')", strings.TrimPrefix(name, "-"), command)
	}
	return err
}

var (
	envParseError   = regexp.MustCompile(`^could not parse ("(?:[^"\\]|\\.)*") as [\w ]+ value from (environment variable "([^"]+)"|file "[^"]*") for flag ([\w-]+): `)
	envGenericError = regexp.MustCompile(`^could not parse ("(?:[^"\\]|\\.)*") from environment variable "([^"]+)" as value for flag ([\w-]+): `)
	argParseError   = regexp.MustCompile(`^invalid (?:boolean )?value ("(?:[^"\\]|\\.)*") for (?:flag )?-+([\w-]+): `)
)

// flagWants describes the values flag name takes.
func flagWants(flags []cli.Flag, name string) string {
	for _, f := range flags {
		if !slices.Contains(f.Names(), name) {
			continue
		}
		switch f.(type) {
		case *cli.BoolFlag:
			return "true or false"
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
			return "a whole number"
		case *cli.DurationFlag:
			return "a duration such as 90s, 15m or 168h"
		case *cli.Float64Flag:
			return "a number"
		}
		if isDuration(f) {
			return "a duration such as 90s, 15m, 36h, 7d or 1d12h"
		}
	}
	return "another value (see --help)"
}

// settings are the resolved global options.
type settings struct {
	Repo, Cluster, Recipient, IdentityFile string
	NoEncryption                           bool
	S3Endpoint, S3Region                   string
	S3Insecure, S3PathStyle                bool
	LogLevel                               string
	SigningKeyFile, TrustedSigner          string
	PolicySigner                           string
	AllowUnsigned                          bool
	errWriter                              io.Writer  // where warnings go
	warnOnce                               *sync.Once // the no-trusted-signer warning, once per run
}

// withCluster returns the settings for another cluster.
func (s settings) withCluster(name string) settings {
	s.Cluster = name
	return s
}

func settingsFrom(c *cli.Context) settings {
	return settings{
		Repo: c.String(flagRepo), Cluster: c.String(flagCluster),
		Recipient: c.String(flagRecipient), IdentityFile: c.String(flagIdentityFile),
		NoEncryption: c.Bool(flagNoEncryption),
		S3Endpoint:   c.String(flagS3Endpoint), S3Region: c.String(flagS3Region),
		S3Insecure: c.Bool(flagS3Insecure), S3PathStyle: c.Bool(flagS3PathStyle),
		LogLevel: c.String(flagLogLevel), errWriter: c.App.ErrWriter, warnOnce: runOnce(c.App),
		SigningKeyFile: c.String(flagSigningKeyFile), TrustedSigner: c.String(flagTrustedSigner),
		PolicySigner:  c.String(flagPolicySigner),
		AllowUnsigned: c.Bool(flagAllowUnsigned),
	}
}

// env returns the settings as environment variables, for a child pgward.
func (s settings) env() []string {
	b := func(v bool) string {
		if v {
			return "true"
		}
		return "false"
	}
	return []string{
		"PGWARD_REPO=" + s.Repo, "PGWARD_CLUSTER=" + s.Cluster, "PGWARD_RECIPIENT=" + s.Recipient,
		"PGWARD_IDENTITY_FILE=" + s.IdentityFile, "PGWARD_NO_ENCRYPTION=" + b(s.NoEncryption),
		"PGWARD_S3_ENDPOINT=" + s.S3Endpoint, "PGWARD_S3_REGION=" + s.S3Region,
		"PGWARD_S3_INSECURE=" + b(s.S3Insecure), "PGWARD_S3_PATH_STYLE=" + b(s.S3PathStyle),
		"PGWARD_LOG_LEVEL=" + s.LogLevel, "PGWARD_CONFIG=", "PGWARD_CONFIG_DIR=",
		"PGWARD_SIGNING_KEY_FILE=" + s.SigningKeyFile, "PGWARD_TRUSTED_SIGNER=" + s.TrustedSigner,
		"PGWARD_TRUSTED_POLICY_SIGNER=" + s.PolicySigner,
		"PGWARD_ALLOW_UNSIGNED=" + b(s.AllowUnsigned),
	}
}

func (s settings) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		return nil, fmt.Errorf("invalid --log-level %q: want debug, info, warn or error", s.LogLevel)
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})), nil
}

// openRepo connects to the repository the settings name. It does not
// contact the server.
func (s settings) openRepo() (storage.Backend, catalog.Layout, error) {
	if s.Cluster == allClusters {
		return nil, catalog.Layout{}, fmt.Errorf("--cluster all names every cluster, which only %s take: name one cluster", strings.Join(perClusterCommands, ", "))
	}
	if err := catalog.ValidateClusterName(s.Cluster); err != nil {
		return nil, catalog.Layout{}, err
	}
	layout := catalog.Layout{Cluster: s.Cluster}
	if s.Repo == "" {
		return nil, layout, errors.New("no repository: give --repo or PGWARD_REPO (file:///var/lib/pgward/repo or s3://bucket/prefix)")
	}
	u, err := url.Parse(s.Repo)
	if err != nil {
		// url.Parse quotes the input, which may hold a secret.
		return nil, layout, errors.New("the repository URL is not a valid URL (not shown: it may hold credentials); use file:///absolute/path or s3://bucket/prefix")
	}
	shown := u.Redacted()
	if u.RawQuery != "" {
		shown = strings.TrimSuffix(shown, "?"+u.RawQuery) + "?…"
	}
	switch u.Scheme {
	case "file":
		if u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
			return nil, layout, fmt.Errorf("file repository URL %q must name an absolute path: file:///var/lib/pgward/repo", shown)
		}
		if u.User != nil {
			return nil, layout, fmt.Errorf("file repository URL %q holds user info: a file repository has no credentials, write file:///absolute/path", shown)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, layout, fmt.Errorf("repository URL %q names host %q: a file repository is local, write file:///absolute/path", shown, u.Host)
		}
		b, err := fs.New(u.Path)
		return b, layout, err
	case "s3":
		bucket, prefix, err := s3.ParseURL(s.Repo)
		if err != nil {
			return nil, layout, err
		}
		if err := checkS3Endpoint(s.S3Endpoint); err != nil {
			return nil, layout, err
		}
		b, err := s3.New(s3.Config{
			Bucket: bucket, Prefix: prefix,
			Endpoint: s.S3Endpoint, Region: s.S3Region, Insecure: s.S3Insecure, PathStyle: s.S3PathStyle,
			AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"), SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		})
		return b, layout, err
	case "":
		return nil, layout, fmt.Errorf("repository %q has no scheme: use file:///absolute/path or s3://bucket/prefix", shown)
	default:
		return nil, layout, fmt.Errorf("unknown repository scheme %q in %q: use file:///absolute/path or s3://bucket/prefix", u.Scheme, shown)
	}
}

// checkS3Endpoint refuses an --s3-endpoint that is not host[:port] or
// http(s)://host[:port]; above all one with credentials in it
// (http://AK:SECRET@host), which would sit in ps and in every error that
// names the endpoint: like the repository URL, it must not hold them
// (issue 11). Errors show the endpoint only when it cannot hold a secret.
func checkS3Endpoint(endpoint string) error {
	const want = "write host[:port] or http(s)://host[:port]"
	if endpoint == "" {
		return nil // the default, s3.amazonaws.com
	}
	if strings.ContainsFunc(endpoint, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return fmt.Errorf("--s3-endpoint holds spaces or control characters (not shown): %s", want)
	}
	hostPort := endpoint
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		u, err := url.Parse(endpoint)
		if err != nil {
			return fmt.Errorf("--s3-endpoint is not a valid URL (not shown: it may hold credentials): %s", want)
		}
		if u.User != nil {
			return fmt.Errorf("--s3-endpoint %q holds credentials: refused; put them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and %s",
				u.Scheme+"://"+u.Host, want)
		}
		if scheme != "http" && scheme != "https" {
			return fmt.Errorf("--s3-endpoint scheme %s: want http or https (%s)", shortQuote(scheme), want)
		}
		if u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "" {
			return fmt.Errorf("--s3-endpoint %q has a path or query after the host (not shown): %s; the bucket and prefix go in --repo s3://bucket/prefix",
				u.Scheme+"://"+u.Host, want)
		}
		hostPort, _, _ = strings.Cut(rest, "/")
	}
	if strings.Contains(hostPort, "@") {
		return fmt.Errorf("--s3-endpoint holds credentials (not shown): refused; put them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and %s", want)
	}
	if hostPort == "" {
		return fmt.Errorf("--s3-endpoint names no host: %s", want)
	}
	if i := strings.IndexAny(hostPort, "/?#"); i >= 0 {
		return fmt.Errorf("--s3-endpoint %s is not host[:port]: it goes on after the host (not shown); %s", shortQuote(hostPort[:i]), want)
	}
	return nil
}

// sealer returns the Sealer for writing, refusing to write unencrypted
// unless --no-encryption says so.
func (s settings) sealer() (*seal.Sealer, error) {
	recipients, err := seal.ParseRecipients(s.Recipient)
	if err != nil {
		return nil, err
	}
	switch {
	case len(recipients) == 0 && !s.NoEncryption:
		return nil, errors.New("no recipient to encrypt to: give --recipient or PGWARD_RECIPIENT (the age1… public key printed by 'pgward keys generate'), " +
			"or --no-encryption to store WAL unencrypted")
	case len(recipients) > 0 && s.NoEncryption:
		return nil, errors.New("both --recipient and --no-encryption are set: choose one")
	}
	key, err := s.signingKey()
	if err != nil {
		return nil, err
	}
	return seal.NewSealer(recipients, seal.LevelFastest, 0).SignWith(key), nil
}

// opener returns the Opener for reading; without an identity it can read
// only unencrypted objects, and says so when it meets an encrypted one.
func (s settings) opener() (*seal.Opener, error) {
	trust, err := s.trust()
	if err != nil {
		return nil, err
	}
	if s.IdentityFile == "" {
		return seal.NewOpener(nil).SetTrust(trust), nil
	}
	if err := checkPrivateFile(s.IdentityFile, "--identity-file"); err != nil {
		return nil, err
	}
	ids, err := seal.LoadIdentities(s.IdentityFile)
	if err != nil {
		return nil, fmt.Errorf("%w (--identity-file / PGWARD_IDENTITY_FILE)", err)
	}
	return seal.NewOpener(ids).SetTrust(trust), nil
}

// archiveFor builds the Archive a command needs from the global settings:
// a Sealer when it writes, an Opener when it reads.
func archiveFor(c *cli.Context, write, read bool) (*archive.Archive, *slog.Logger, error) {
	s := settingsFrom(c)
	log, err := s.logger(c.App.ErrWriter)
	if err != nil {
		return nil, nil, err
	}
	a := &archive.Archive{Logger: log}
	if write {
		if a.Sealer, err = s.sealer(); err != nil {
			return nil, nil, err
		}
		warnUnsigned(log, a.Sealer.Signer())
	}
	if read {
		if a.Opener, err = s.opener(); err != nil {
			return nil, nil, err
		}
	}
	if a.Store, a.Layout, err = s.openRepo(); err != nil {
		return nil, nil, err
	}
	return a, log, nil
}

// runOnce is one sync.Once per run of the app, for warnings that every
// settingsFrom would otherwise repeat.
func runOnce(app *cli.App) *sync.Once {
	if app.Metadata == nil {
		app.Metadata = map[string]any{}
	}
	o, ok := app.Metadata["warn-once"].(*sync.Once)
	if !ok {
		o = new(sync.Once)
		app.Metadata["warn-once"] = o
	}
	return o
}
