package dump

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// InfoFormat is the version of the dump.json format.
const InfoFormat = 1

// Kinds of dump.
const (
	KindDatabase = "database"
	KindGlobals  = "globals" // pg_dumpall --globals-only: roles, tablespaces
)

// Object names inside a dump's prefix (before the sealer's suffix).
const (
	dataObject    = "dump.pgdump" // pg_dump -Fc; for globals, globals.sql
	globalsObject = "globals.sql"
	tablesObject  = "tables.json" // per-table rows, sealed: table names are the customer's
)

// Info is dump.json, written last: a dump exists once it does.
type Info struct {
	Format        int       `json:"format"`
	ID            string    `json:"id"`
	Kind          string    `json:"kind"`
	Database      string    `json:"database,omitempty"`
	Owner         string    `json:"owner,omitempty"`
	StartTime     time.Time `json:"start_time"`
	EndTime       time.Time `json:"end_time"`
	Object        string    `json:"object"` // the data object's name in the dump's prefix, suffix included
	DataBytes     int64     `json:"data_bytes"`
	StoredBytes   int64     `json:"stored_bytes"`
	Checksum      string    `json:"checksum"` // XXH3-128 of the plaintext, hex
	PgDumpVersion string    `json:"pg_dump_version"`
	ServerVersion string    `json:"server_version"`
	// Tables and Rows are read from the archive as it streams (every
	// table, and the rows of its data); RowEstimate is the server's
	// statistics (pg_class.reltuples) at dump time.
	Tables       int      `json:"tables"`
	Rows         int64    `json:"rows"`
	RowEstimate  int64    `json:"row_estimate"`
	TablesObject string   `json:"tables_object,omitempty"`
	Recipients   []string `json:"recipients"` // public keys it is sealed to; empty: unencrypted
	Attempts     int      `json:"attempts"`
	ReplayPaused bool     `json:"replay_paused,omitempty"`
}

// Dir is the directory of the dump's database (or of the globals).
func (i *Info) Dir() string {
	if i.Kind == KindGlobals {
		return catalog.GlobalsDumpDir
	}
	return catalog.DumpDatabaseDir(i.Database)
}

// Name is the database's name, or "(globals)".
func (i *Info) Name() string {
	if i.Kind == KindGlobals {
		return "(globals)"
	}
	return i.Database
}

// Catalog reads and changes the dumps of one cluster in a repository.
type Catalog struct {
	Store  storage.Backend
	Layout catalog.Layout
	Logger *slog.Logger
	// Trust checks the signatures of what is read (dump.json, and through
	// the Opener the dumps); nil checks none.
	Trust *seal.Trust
	// Signer signs what is written; nil writes unsigned dumps.
	Signer *seal.SigningKey
}

// DatabaseDir is the directory that holds database's dumps.
func DatabaseDir(database string) string { return catalog.DumpDatabaseDir(database) }

// List returns the dumps in directory dir (DatabaseDir(name), or
// catalog.GlobalsDumpDir; "" for all), oldest first.
func (c *Catalog) List(ctx context.Context, dir string) ([]*Info, error) {
	infos, _, err := c.list(ctx, dir)
	return infos, err
}

// list reads the finished dumps under dir from one listing, which also
// gives the unfinished ones (no dump.json): their prefixes, with the time
// of their newest object.
func (c *Catalog) list(ctx context.Context, dir string) ([]*Info, map[string]time.Time, error) {
	prefix := c.Layout.DumpsPrefix()
	if dir != "" {
		prefix += dir + "/"
	}
	finished := map[string]string{} // dump prefix → dump.json key
	newest := map[string]time.Time{}
	err := c.Store.List(ctx, prefix, func(o storage.ObjectInfo) error {
		parts := strings.SplitN(strings.TrimPrefix(o.Key, c.Layout.DumpsPrefix()), "/", 3)
		if len(parts) < 3 {
			return nil
		}
		p := c.Layout.DumpPrefix(parts[0], parts[1])
		if parts[2] == "dump.json" {
			finished[p] = o.Key
		}
		if o.ModTime.After(newest[p]) {
			newest[p] = o.ModTime
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list dumps: %w", err)
	}
	var out []*Info
	for p, key := range finished {
		delete(newest, p)
		info, err := c.read(ctx, key)
		if errors.Is(err, storage.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, nil, err
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b *Info) int {
		if c := a.StartTime.Compare(b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.Dir(), b.Dir())
	})
	return out, newest, nil
}

func (c *Catalog) read(ctx context.Context, key string) (*Info, error) {
	rc, _, err := c.Store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := seal.ReadAll(rc, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if c.Trust != nil {
		if data, err = c.Trust.VerifyDocument(data, key); err != nil {
			return nil, err
		}
	} else if seal.DocumentSigned(data) {
		data = data[:bytes.LastIndexByte(bytes.TrimSuffix(data, []byte("\n")), '\n')+1]
	}
	var info Info
	if err := json.Unmarshal(data, &info); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if info.Format != InfoFormat {
		return nil, fmt.Errorf("read %s: dump format %d is not one this pgward reads (%d)", key, info.Format, InfoFormat)
	}
	// Keys are built from what dump.json says (delete, restore, drill): it
	// must name the dump it sits in, and objects inside it.
	if (info.Kind != KindDatabase && info.Kind != KindGlobals) || info.ID == "" ||
		key != c.Layout.DumpInfoKey(info.Dir(), info.ID) || !plainName(info.Object) ||
		(info.TablesObject != "" && !plainName(info.TablesObject)) {
		return nil, fmt.Errorf("read %s: it does not describe the dump it sits in (kind %q, database %q, id %q, object %q): not trusted; inspect it by hand",
			key, info.Kind, info.Database, info.ID, info.Object)
	}
	return &info, nil
}

// Find returns the dump of database with id, or, with id "", the newest
// one that started at or before at (the newest of all when at is zero).
func (c *Catalog) Find(ctx context.Context, database, id string, at time.Time) (*Info, error) {
	dumps, err := c.List(ctx, DatabaseDir(database))
	if err != nil {
		return nil, err
	}
	if len(dumps) == 0 {
		return nil, fmt.Errorf("no dump of database %q in cluster %q (see 'pgward dump list')", database, c.Layout.Cluster)
	}
	for i := len(dumps) - 1; i >= 0; i-- {
		d := dumps[i]
		switch {
		case id != "" && d.ID == id:
			return d, nil
		case id == "" && (at.IsZero() || !d.StartTime.After(at)):
			return d, nil
		}
	}
	if id != "" {
		return nil, fmt.Errorf("no dump %s of database %q (see 'pgward dump list --database %s')", id, database, database)
	}
	return nil, fmt.Errorf("no dump of database %q started at or before %s; the oldest started at %s",
		database, at.UTC().Format(time.RFC3339), dumps[0].StartTime.UTC().Format(time.RFC3339))
}

// Delete removes a dump: dump.json first, so that a crash midway leaves
// only unlisted leftovers, which Prune sweeps.
func (c *Catalog) Delete(ctx context.Context, info *Info) error {
	prefix := c.Layout.DumpPrefix(info.Dir(), info.ID)
	if err := c.Store.Delete(ctx, c.Layout.DumpInfoKey(info.Dir(), info.ID)); err != nil {
		return fmt.Errorf("delete dump %s of %s: %w", info.ID, info.Name(), err)
	}
	return c.deletePrefix(ctx, prefix)
}

func (c *Catalog) deletePrefix(ctx context.Context, prefix string) error {
	var keys []string
	if err := c.Store.List(ctx, prefix, func(o storage.ObjectInfo) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, k := range keys {
		if err := c.Store.Delete(ctx, k); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	return nil
}

// PruneResult says what a prune kept and deleted.
type PruneResult struct {
	Kept     []PruneEntry `json:"kept"`
	Deleted  []PruneEntry `json:"deleted"`
	Leftover []string     `json:"leftover_prefixes_deleted"`
}

// PruneEntry is one dump in a prune's result.
type PruneEntry struct {
	Database string    `json:"database"`
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Reason   string    `json:"reason,omitempty"`
}

// leftoverAge is how old an unfinished dump's objects must be before prune
// removes them: older than any dump that could still be running.
const leftoverAge = 24 * time.Hour

// Prune applies policy to every database's dumps (and the globals'),
// each database on its own. It also removes the objects of dumps that
// never finished (no dump.json) once older than a day. With dryRun it
// only reports.
func (c *Catalog) Prune(ctx context.Context, policy Policy, now time.Time, dryRun bool) (*PruneResult, error) {
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	dumps, unfinished, err := c.list(ctx, "")
	if err != nil {
		return nil, err
	}
	byDir := map[string][]*Info{}
	for _, d := range dumps {
		byDir[d.Dir()] = append(byDir[d.Dir()], d)
	}
	res := &PruneResult{}
	for _, list := range byDir {
		dated := make([]Dated, len(list))
		for i, d := range list {
			dated[i] = Dated{ID: d.ID, Time: d.StartTime}
		}
		keep := policy.Keep(dated)
		for _, d := range list {
			e := PruneEntry{Database: d.Name(), ID: d.ID, Time: d.StartTime, Reason: keep[d.ID]}
			if e.Reason != "" {
				res.Kept = append(res.Kept, e)
				continue
			}
			res.Deleted = append(res.Deleted, e)
			if !dryRun {
				if err := c.Delete(ctx, d); err != nil {
					return res, err
				}
			}
		}
	}
	// Unfinished dumps, judged by their newest object.
	for prefix, mod := range unfinished {
		if now.Sub(mod) < leftoverAge {
			continue
		}
		if _, err := c.Store.Stat(ctx, prefix+"dump.json"); err == nil {
			continue // finished since the listing
		}
		res.Leftover = append(res.Leftover, prefix)
		if !dryRun {
			if err := c.deletePrefix(ctx, prefix); err != nil {
				return res, err
			}
		}
	}
	sortEntries := func(s []PruneEntry) {
		slices.SortFunc(s, func(a, b PruneEntry) int {
			if c := strings.Compare(a.Database, b.Database); c != 0 {
				return c
			}
			return a.Time.Compare(b.Time)
		})
	}
	sortEntries(res.Kept)
	sortEntries(res.Deleted)
	slices.Sort(res.Leftover)
	return res, nil
}

func marshalInfo(info *Info) ([]byte, error) {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func (c *Catalog) putJSON(ctx context.Context, key string, data []byte) error {
	data, err := c.Signer.SignDocument(data, key)
	if err != nil {
		return err
	}
	return c.Store.Create(ctx, key, bytes.NewReader(data), int64(len(data)), nil)
}

// plainName reports whether name is one object name, not a path.
func plainName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\\")
}
