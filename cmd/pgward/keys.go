package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/seal"
)

func keysCommand() *cli.Command {
	return &cli.Command{
		Name:  "keys",
		Usage: "make the keys that encrypt (age) and sign (Ed25519) the repository",
		Subcommands: []*cli.Command{{
			Name:  "generate",
			Usage: "write a new identity (or, with --signing, a signing key) to a file and print its public key",
			Description: `Writes a new age X25519 identity to --output with mode 0600 and prints its
recipient (age1…) on standard output.

Give the recipient to the hosts that archive (--recipient / PGWARD_RECIPIENT):
it can only encrypt. Keep the identity file on restore hosts only
(--identity-file / PGWARD_IDENTITY_FILE), and keep a copy somewhere safe:
without it nothing in the repository can be read.

With --signing it writes a signing key instead (Ed25519) and prints its public
key (pgwsig1…). Hosts that write (wal-push, stream, backup, dump) sign every
object with it (--signing-key-file / PGWARD_SIGNING_KEY_FILE); hosts that read
accept only objects signed by the keys they trust (--trusted-signer /
PGWARD_TRUSTED_SIGNER, comma-separated, so a rotation can trust two).`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "write the key to `FILE` (must not exist)"},
				&cli.BoolFlag{Name: "signing", Usage: "make a writer's Ed25519 signing key instead, and print its public key (pgwsig1…) for --trusted-signer"},
			},
			ArgsUsage: " ",
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return fmt.Errorf("keys generate takes no arguments, got %q", c.Args().First())
				}
				out := c.String("output")
				generate := seal.GenerateIdentity
				if c.Bool("signing") {
					generate = seal.GenerateSigningKey
				}
				keyFile, recipient, err := generate()
				if err != nil {
					return err
				}
				if err := writeNewFile(out, keyFile); err != nil {
					return err
				}
				fmt.Fprintln(c.App.Writer, recipient)
				return nil
			},
		}},
	}
}

// writeNewFile creates path with mode 0600, durably, and refuses to replace
// an existing file: overwriting a key would make every object
// encrypted to it unreadable.
func writeNewFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pgward-key-*")
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	// link(2) fails if path exists, so an existing key is never replaced,
	// even by a concurrent run.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s already exists: pgward never overwrites a key; choose another --output", path)
		}
		return fmt.Errorf("write key: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
