package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
	"go.yaml.in/yaml/v3"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/fs"
	"github.com/pgward/pgward/storage/s3"
)

// Global settings: the contract of DESIGN.md "Configuration". Each is a
// flag, an environment variable and a key of the --config YAML file.
const (
	flagConfig       = "config"
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
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: flagConfig, EnvVars: []string{"PGWARD_CONFIG"}, Usage: "read settings from this YAML `FILE` (keys are the long option names, e.g. repo: s3://bucket/pg)"},
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
		&cli.BoolFlag{Name: flagAllowUnsigned, EnvVars: []string{"PGWARD_ALLOW_UNSIGNED"}, Usage: "with --trusted-signer: still read objects that carry no signature (a repository written before signing), with a warning"},
		&cli.StringFlag{Name: flagLogLevel, EnvVars: []string{"PGWARD_LOG_LEVEL"}, Value: "info", Usage: "log `LEVEL`: debug, info, warn or error"},
	}
}

// configKeys are the settings the YAML file may hold.
var configKeys = []string{
	flagRepo, flagCluster, flagRecipient, flagIdentityFile, flagNoEncryption,
	flagS3Endpoint, flagS3Region, flagS3Insecure, flagS3PathStyle, flagLogLevel,
	flagSigningKeyFile, flagTrustedSigner, flagAllowUnsigned,
}

// loadConfigFile applies the YAML file's values to the global settings
// that neither a flag nor an environment variable set.
func loadConfigFile(c *cli.Context) error {
	path := c.String(flagConfig)
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	var values map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&values); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return fmt.Errorf("config file %s: %w", path, err)
	}
	for key, v := range values {
		if !slices.Contains(configKeys, key) {
			return fmt.Errorf("config file %s: unknown key %q (known keys: %s)", path, key, strings.Join(configKeys, ", "))
		}
		if c.IsSet(key) {
			continue // a flag or environment variable wins
		}
		var s string
		switch v := v.(type) {
		case []any: // a YAML list of recipients
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			s = strings.Join(parts, ",")
		case nil:
			continue
		default:
			s = fmt.Sprint(v)
		}
		if err := c.Set(key, s); err != nil {
			return fmt.Errorf("config file %s: key %s: %w", path, key, err)
		}
	}
	return nil
}

// settings are the resolved global options.
type settings struct {
	Repo, Cluster, Recipient, IdentityFile string
	NoEncryption                           bool
	S3Endpoint, S3Region                   string
	S3Insecure, S3PathStyle                bool
	LogLevel                               string
	SigningKeyFile, TrustedSigner          string
	AllowUnsigned                          bool
}

func settingsFrom(c *cli.Context) settings {
	return settings{
		Repo: c.String(flagRepo), Cluster: c.String(flagCluster),
		Recipient: c.String(flagRecipient), IdentityFile: c.String(flagIdentityFile),
		NoEncryption: c.Bool(flagNoEncryption),
		S3Endpoint:   c.String(flagS3Endpoint), S3Region: c.String(flagS3Region),
		S3Insecure: c.Bool(flagS3Insecure), S3PathStyle: c.Bool(flagS3PathStyle),
		LogLevel:       c.String(flagLogLevel),
		SigningKeyFile: c.String(flagSigningKeyFile), TrustedSigner: c.String(flagTrustedSigner),
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
		"PGWARD_LOG_LEVEL=" + s.LogLevel, "PGWARD_CONFIG=",
		"PGWARD_SIGNING_KEY_FILE=" + s.SigningKeyFile, "PGWARD_TRUSTED_SIGNER=" + s.TrustedSigner,
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
	return seal.NewSealer(recipients, seal.LevelFastest, 0), nil
}

// opener returns the Opener for reading; without an identity it can read
// only unencrypted objects, and says so when it meets an encrypted one.
func (s settings) opener() (*seal.Opener, error) {
	if s.IdentityFile == "" {
		return seal.NewOpener(nil), nil
	}
	ids, err := seal.LoadIdentities(s.IdentityFile)
	if err != nil {
		return nil, fmt.Errorf("%w (--identity-file / PGWARD_IDENTITY_FILE)", err)
	}
	return seal.NewOpener(ids), nil
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
