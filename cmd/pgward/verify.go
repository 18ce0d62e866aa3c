package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/jobs"
	"github.com/pgward/pgward/verify"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "read stored objects back: each must decrypt and decompress, and match its recorded checksum",
		Description: `Reads every WAL object, every part of every finished backup and every dump
(or a random --sample fraction of them) through the checks a restore makes:
it must decrypt and decompress, match the size and checksum recorded for it,
be the file its name says (WAL page headers, history files), and, with
--trusted-signer, carry a valid signature made for its place. Counts signed,
unsigned and bad objects. Needs the identity. Exits 1 and names every damaged
or forged object when one is found.`,
		Flags: append([]cli.Flag{
			&cli.Float64Flag{Name: "sample", Value: 1, Usage: "read this `FRACTION` of the objects, chosen at random (0 < f <= 1)"},
			&cli.BoolFlag{Name: "json", Usage: "print the result as one JSON object (counts, and each damaged object with its error)"},
		}, oneShotFlags()...),
		Action: runVerify,
	}
}

func runVerify(c *cli.Context) error {
	sample := c.Float64("sample")
	if sample <= 0 || sample > 1 {
		return fmt.Errorf("--sample %v: want a fraction above 0, at most 1", sample)
	}
	a, log, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	asJSON := c.Bool("json")
	out := c.App.Writer
	plan, err := verify.List(c.Context, a)
	if err != nil {
		return err
	}
	bytes := plan.Bytes
	if sample < 1 {
		bytes = int64(float64(bytes) * sample)
	}
	prog := startProgress(c, log, "verify", bytes, asJSON)
	opts := verify.Options{Sample: sample, Read: prog.Add}
	if !asJSON {
		opts.Bad = func(f verify.Finding) { fmt.Fprintf(out, "DAMAGED %s: %s\n", f.Key, f.Error) }
	}
	return runOneShot(c, log, "verify", a.Layout.Cluster, func(ctx context.Context) (jobs.Outcome, error) {
		res := verify.Run(ctx, a, plan, opts)
		prog.Finish()
		if asJSON {
			if err := printJSON(out, res); err != nil {
				return jobs.Outcome{}, err
			}
		} else {
			fmt.Fprintf(out, "verified %d of %d objects: %d signed, %d unsigned, %d damaged or not authentic\n", res.Checked, res.Total, res.Signed, res.Unsigned, res.Bad)
		}
		o := jobs.Outcome{Bytes: res.Bytes, Note: fmt.Sprintf("verified %d of %d objects, %d bad", res.Checked, res.Total, res.Bad)}
		if res.Bad > 0 {
			return o, fmt.Errorf("%d damaged or forged objects: restore them from another copy", res.Bad)
		}
		return o, nil
	})
}
