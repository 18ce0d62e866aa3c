package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
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
		Flags: []cli.Flag{
			&cli.Float64Flag{Name: "sample", Value: 1, Usage: "read this `FRACTION` of the objects, chosen at random (0 < f <= 1)"},
		},
		Action: runVerify,
	}
}

type verifyItem struct {
	key  string
	name string      // the WAL file name, for WAL objects
	want seal.Expect // for backup parts and dumps
}

// verifyCounts is what verify found.
type verifyCounts struct {
	Checked, Total, Signed, Unsigned, Bad int
}

func runVerify(c *cli.Context) error {
	sample := c.Float64("sample")
	if sample <= 0 || sample > 1 {
		return fmt.Errorf("--sample %v: want a fraction above 0, at most 1", sample)
	}
	a, _, err := archiveFor(c, false, true)
	if err != nil {
		return err
	}
	trust := a.Opener.Trust()
	out := c.App.Writer
	var n verifyCounts
	var damaged []string
	bad := func(key string, err error) {
		n.Bad++
		damaged = append(damaged, key)
		fmt.Fprintf(out, "DAMAGED %s: %v\n", key, err)
	}
	var items []verifyItem
	err = a.ListWAL(c.Context, func(_ wal.FileName, name string, oi storage.ObjectInfo) error {
		items = append(items, verifyItem{key: oi.Key, name: name})
		return nil
	})
	if err != nil {
		return err
	}
	// Documents are read whole, each once: backup.json and dump.json
	// through the listings below, which refuse what does not verify.
	backups, skipped, err := basebackup.List(c.Context, a.Store, a.Layout, trust)
	if err != nil {
		return err
	}
	for _, e := range skipped {
		bad("backup.json", e)
	}
	for _, b := range backups {
		for _, ar := range b.Archives {
			for _, p := range ar.Parts {
				items = append(items, verifyItem{key: p.Key, want: ar.Expect(p)})
			}
		}
		m := b.Manifest
		items = append(items, verifyItem{key: m.Key, want: seal.Expect{Key: m.Key, Kind: seal.KindBackupManifest, Size: m.Bytes, Checksum: m.Checksum}})
	}
	cat := dump.Catalog{Store: a.Store, Layout: a.Layout, Trust: trust}
	dumps, err := cat.List(c.Context, "")
	if err != nil {
		bad("dump.json", err)
	}
	for _, d := range dumps {
		key := a.Layout.DumpPrefix(d.Dir(), d.ID) + d.Object
		items = append(items, verifyItem{key: key, want: seal.Expect{Key: key, Kind: seal.KindDump, Size: d.DataBytes, Checksum: d.Checksum}})
		if d.TablesObject != "" {
			tkey := a.Layout.DumpPrefix(d.Dir(), d.ID) + d.TablesObject
			items = append(items, verifyItem{key: tkey, want: seal.Expect{Key: tkey, Kind: seal.KindDumpTables, Size: -1}})
		}
	}
	n.Total = len(items)
	for _, it := range items {
		if sample < 1 && rand.Float64() >= sample {
			continue
		}
		n.Checked++
		signed, err := verifyObject(c.Context, a, it)
		switch {
		case err != nil:
			bad(it.key, err)
		case signed:
			n.Signed++
		default:
			n.Unsigned++
		}
	}
	fmt.Fprintf(out, "verified %d of %d objects: %d signed, %d unsigned, %d damaged or not authentic\n", n.Checked, n.Total, n.Signed, n.Unsigned, n.Bad)
	if len(damaged) > 0 {
		return fmt.Errorf("%d damaged or forged objects: restore them from another copy", len(damaged))
	}
	return nil
}

// verifyObject reads one object back through the same checks a restore
// makes, and reports whether it was signed.
func verifyObject(ctx context.Context, a *archive.Archive, it verifyItem) (bool, error) {
	if it.name != "" {
		return a.Verify(ctx, it.name, it.key)
	}
	rc, _, err := a.Store.Get(ctx, it.key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	r, err := a.Opener.NewReader(rc, it.want)
	if err != nil {
		return false, err
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		return false, err
	}
	return r.Signed(), nil
}
