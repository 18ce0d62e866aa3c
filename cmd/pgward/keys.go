package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/internal/atomicfile"
	"github.com/pgward/pgward/inventory"
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
		}, {
			Name:  "usage",
			Usage: "count, per recipient, the stored objects sealed to it, and those only its identity opens",
			Description: `Every sealed object records the fingerprints of the recipients it was sealed
to (its metadata). After a key rotation (a new --recipient beside the old one,
then the old one dropped), keys usage says how many objects still need the old
identity: an identity may be retired once no object is sealed to its recipient
alone (ONLY is 0), that is once retention has removed them. Objects stored
before pgward recorded recipients are counted as not recorded. The recipients
given with --recipient, and those of --identity-file's identities, are shown
by name; others by fingerprint.`,
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "print the counts as JSON"},
				&cli.IntFlag{Name: "jobs", Value: 8, Usage: "read `N` objects' metadata at once (S3 lists none)"},
			},
			Action: runKeysUsage,
		}},
	}
}

// writeNewFile creates path with mode 0600, durably, and refuses to replace
// an existing file: overwriting a key would make every object
// encrypted to it unreadable.
func writeNewFile(path string, data []byte) error {
	if err := atomicfile.Create(path, data, 0o600); err != nil {
		if errors.Is(err, atomicfile.ErrExist) {
			return fmt.Errorf("%s already exists: pgward never overwrites a key; choose another --output", path)
		}
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

func runKeysUsage(c *cli.Context) error {
	s := settingsFrom(c)
	store, layout, err := s.openRepo()
	if err != nil {
		return err
	}
	if j := c.Int("jobs"); j < 1 || j > 64 {
		return fmt.Errorf("--jobs %d: want 1 to 64", j)
	}
	// Name the recipients this host knows.
	names := map[string]string{}
	known := strings.Split(s.Recipient, ",")
	if s.IdentityFile != "" {
		if err := checkPrivateFile(s.IdentityFile, "--identity-file"); err != nil {
			return err
		}
		ids, err := seal.LoadIdentities(s.IdentityFile)
		if err != nil {
			return err
		}
		known = append(known, seal.IdentityRecipients(ids)...)
	}
	for _, r := range known {
		if r = strings.TrimSpace(r); r != "" {
			names[seal.Fingerprint(r)] = r
		}
	}
	u, err := inventory.KeyUsageOf(c.Context, store, layout, c.Int("jobs"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		type row struct {
			Recipient string `json:"recipient,omitempty"`
			inventory.RecipientUsage
		}
		out := struct {
			Cluster    string `json:"cluster"`
			Recipients []row  `json:"recipients"`
			inventory.KeyUsage
		}{Cluster: layout.Cluster, Recipients: []row{}, KeyUsage: u}
		for _, r := range u.Recipients {
			out.Recipients = append(out.Recipients, row{names[r.Fingerprint], r})
		}
		return printJSON(c.App.Writer, out)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECIPIENT\tSEALED\tBYTES\tONLY\tONLY BYTES\tNEWEST")
	for _, r := range u.Recipients {
		name := names[r.Fingerprint]
		if name == "" {
			name = "fingerprint " + r.Fingerprint
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", name, r.Sealed.Objects, humanBytes(r.Sealed.Bytes), r.Only.Objects, humanBytes(r.Only.Bytes),
			r.Sealed.Newest.UTC().Format("2006-01-02 15:04"))
	}
	for _, t := range []struct {
		name  string
		tally inventory.Tally
	}{{"(unencrypted)", u.Unencrypted}, {"(not recorded)", u.NotRecorded}} {
		if t.tally.Objects > 0 {
			fmt.Fprintf(tw, "%s\t%d\t%s\t-\t-\t%s\n", t.name, t.tally.Objects, humanBytes(t.tally.Bytes), t.tally.Newest.UTC().Format("2006-01-02 15:04"))
		}
	}
	return tw.Flush()
}
