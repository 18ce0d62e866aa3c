// Package verify reads a cluster's stored objects back through the checks
// a restore makes: every WAL object, every part and manifest of every
// finished backup, every dump. Each must decrypt and decompress, match the
// size and checksum recorded for it, be the file its name says and, when
// signers are trusted, carry a valid signature made for its place.
package verify

import (
	"context"
	"io"
	"math/rand/v2"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/dump"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Item is one object to read back.
type Item struct {
	Key    string
	Name   string      // the WAL file name, for WAL objects
	Want   seal.Expect // for backup parts, manifests and dumps
	Stored int64       // its stored size, for progress
}

// Finding is an object that failed its checks (or a listing that did).
type Finding struct {
	Key   string `json:"key"`
	Error string `json:"error"`
}

// Plan is what a verify reads: the items, and what failed already while
// listing (a backup.json or dump.json that does not verify).
type Plan struct {
	Items    []Item
	Findings []Finding
	Bytes    int64 // stored bytes of all items
}

// List plans a verify of a's cluster. a.Opener must be set.
func List(ctx context.Context, a *archive.Archive) (Plan, error) {
	var p Plan
	trust := a.Opener.Trust()
	err := a.ListWAL(ctx, func(_ wal.FileName, name string, oi storage.ObjectInfo) error {
		p.Items = append(p.Items, Item{Key: oi.Key, Name: name, Stored: oi.Size})
		return nil
	})
	if err != nil {
		return p, err
	}
	// Documents are read whole, each once: backup.json and dump.json
	// through the listings below, which refuse what does not verify.
	backups, skipped, err := basebackup.List(ctx, a.Store, a.Layout, trust)
	if err != nil {
		return p, err
	}
	for _, e := range skipped {
		p.Findings = append(p.Findings, Finding{Key: "backup.json", Error: e.Error()})
	}
	for _, b := range backups {
		for _, ar := range b.Archives {
			for _, part := range ar.Parts {
				p.Items = append(p.Items, Item{Key: part.Key, Want: ar.Expect(part), Stored: part.StoredBytes})
			}
		}
		m := b.Manifest
		p.Items = append(p.Items, Item{Key: m.Key, Want: seal.Expect{Key: m.Key, Kind: seal.KindBackupManifest, Size: m.Bytes, Checksum: m.Checksum}, Stored: m.StoredBytes})
	}
	cat := dump.Catalog{Store: a.Store, Layout: a.Layout, Trust: trust}
	dumps, err := cat.List(ctx, "")
	if err != nil {
		p.Findings = append(p.Findings, Finding{Key: "dump.json", Error: err.Error()})
	}
	for _, d := range dumps {
		key := a.Layout.DumpPrefix(d.Dir(), d.ID) + d.Object
		p.Items = append(p.Items, Item{Key: key, Want: seal.Expect{Key: key, Kind: seal.KindDump, Size: d.DataBytes, Checksum: d.Checksum}, Stored: d.StoredBytes})
		if d.TablesObject != "" {
			tkey := a.Layout.DumpPrefix(d.Dir(), d.ID) + d.TablesObject
			p.Items = append(p.Items, Item{Key: tkey, Want: seal.Expect{Key: tkey, Kind: seal.KindDumpTables, Size: -1}})
		}
	}
	for _, it := range p.Items {
		p.Bytes += it.Stored
	}
	return p, nil
}

// Options say how much to read.
type Options struct {
	// Sample is the fraction of the items read, chosen at random (0 < f
	// <= 1; 0 means all).
	Sample float64
	// Read, when set, is told of the stored bytes of each item read.
	Read func(n int64)
	// Bad, when set, is told of each finding as it is made.
	Bad func(Finding)
}

// Result is what a verify found. Its JSON form is 'pgward verify --json'.
type Result struct {
	Cluster  string    `json:"cluster"`
	Checked  int       `json:"checked"`
	Total    int       `json:"total"`
	Signed   int       `json:"signed"`
	Unsigned int       `json:"unsigned"`
	Bad      int       `json:"bad"`
	Bytes    int64     `json:"stored_bytes_read"`
	Findings []Finding `json:"findings"`
}

// Run reads the plan's items back and counts what it found.
func Run(ctx context.Context, a *archive.Archive, p Plan, opts Options) Result {
	res := Result{Cluster: a.Layout.Cluster, Total: len(p.Items), Findings: []Finding{}}
	bad := func(f Finding) {
		res.Bad++
		res.Findings = append(res.Findings, f)
		if opts.Bad != nil {
			opts.Bad(f)
		}
	}
	for _, f := range p.Findings {
		bad(f)
	}
	for _, it := range p.Items {
		if ctx.Err() != nil {
			bad(Finding{Key: it.Key, Error: ctx.Err().Error()})
			break
		}
		if opts.Sample > 0 && opts.Sample < 1 && rand.Float64() >= opts.Sample {
			continue
		}
		res.Checked++
		signed, err := Object(ctx, a, it)
		res.Bytes += it.Stored
		if opts.Read != nil {
			opts.Read(it.Stored)
		}
		switch {
		case err != nil:
			bad(Finding{Key: it.Key, Error: err.Error()})
		case signed:
			res.Signed++
		default:
			res.Unsigned++
		}
	}
	return res
}

// Object reads one object back through the same checks a restore makes,
// and reports whether it was signed.
func Object(ctx context.Context, a *archive.Archive, it Item) (bool, error) {
	if it.Name != "" {
		return a.Verify(ctx, it.Name, it.Key)
	}
	rc, _, err := a.Store.Get(ctx, it.Key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	r, err := a.Opener.NewReader(rc, it.Want)
	if err != nil {
		return false, err
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		return false, err
	}
	return r.Signed(), nil
}
