package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/urfave/cli/v2"
	"github.com/zeebo/xxh3"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "read stored objects back: each must decrypt and decompress, and match its recorded checksum",
		Description: `Reads every WAL object and every part of every finished backup (or a random
--sample fraction of them), checks that it decrypts and decompresses, and
compares it with the checksum recorded for it (object metadata for WAL,
backup.json for backup parts). Needs the identity. Exits 1 and names every
damaged object when one is found.`,
		Flags: []cli.Flag{
			&cli.Float64Flag{Name: "sample", Value: 1, Usage: "read this `FRACTION` of the objects, chosen at random (0 < f <= 1)"},
		},
		Action: runVerify,
	}
}

type verifyItem struct {
	key      string
	checksum string // hex XXH3-128 of the plaintext; "" if none recorded
	size     int64  // -1 if not recorded
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
	var items []verifyItem
	prefix := a.Layout.WALPrefix()
	err = a.Store.List(c.Context, prefix, func(oi storage.ObjectInfo) error {
		if strings.HasSuffix(oi.Key, seal.SuffixEncrypted) || strings.HasSuffix(oi.Key, seal.SuffixPlain) {
			items = append(items, verifyItem{key: oi.Key, size: -1}) // metadata comes with Get
		}
		return nil
	})
	if err != nil {
		return err
	}
	backups, skipped, err := basebackup.List(c.Context, a.Store, a.Layout)
	if err != nil {
		return err
	}
	for _, b := range backups {
		for _, ar := range b.Archives {
			for _, p := range ar.Parts {
				items = append(items, verifyItem{key: p.Key, checksum: p.Checksum, size: p.Bytes})
			}
		}
		items = append(items, verifyItem{key: b.Manifest.Key, checksum: b.Manifest.Checksum, size: b.Manifest.Bytes})
	}
	var damaged []string
	for _, e := range skipped {
		damaged = append(damaged, e.Error())
	}
	checked := 0
	for _, it := range items {
		if sample < 1 && rand.Float64() >= sample {
			continue
		}
		checked++
		if err := verifyObject(c.Context, a, it); err != nil {
			damaged = append(damaged, err.Error())
			fmt.Fprintf(c.App.Writer, "DAMAGED %s: %v\n", it.key, err)
		}
	}
	fmt.Fprintf(c.App.Writer, "verified %d of %d objects: %d damaged\n", checked, len(items), len(damaged))
	if len(damaged) > 0 {
		return fmt.Errorf("%d damaged objects: restore them from another copy", len(damaged))
	}
	return nil
}

func verifyObject(ctx context.Context, a *archive.Archive, it verifyItem) error {
	rc, info, err := a.Store.Get(ctx, it.key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if it.checksum == "" {
		it.checksum = info.Metadata[archive.MetaChecksum]
	}
	r, err := a.Opener.NewReader(rc)
	if err != nil {
		return err
	}
	defer r.Close()
	h := xxh3.New128()
	n, err := io.Copy(h, r)
	if err != nil {
		return err
	}
	if it.size >= 0 && n != it.size {
		return fmt.Errorf("%w: %d bytes, %d recorded", seal.ErrCorrupt, n, it.size)
	}
	sum := h.Sum128().Bytes()
	if it.checksum != "" && hex.EncodeToString(sum[:]) != it.checksum {
		return fmt.Errorf("%w: checksum differs from the one recorded", seal.ErrCorrupt)
	}
	return nil // without a recorded checksum, decrypting and decompressing is the check
}
