package dump

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/memory"
)

// putDump stores a finished dump as Run leaves it: its data object, then
// dump.json.
func putDump(t *testing.T, c *Catalog, info *Info) {
	t.Helper()
	ctx := context.Background()
	info.Format, info.Object = InfoFormat, dataObject+".zst"
	if err := c.Store.Create(ctx, c.Layout.DumpPrefix(info.Dir(), info.ID)+info.Object, strings.NewReader("x"), 1, nil); err != nil {
		t.Fatal(err)
	}
	data, err := marshalInfo(info)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.putJSON(ctx, c.Layout.DumpInfoKey(info.Dir(), info.ID), data); err != nil {
		t.Fatal(err)
	}
}

func keys(t *testing.T, store storage.Backend) []string {
	t.Helper()
	var out []string
	store.List(context.Background(), "", func(o storage.ObjectInfo) error {
		out = append(out, o.Key)
		return nil
	})
	return out
}

func TestPruneKeepsPerDatabaseAndSweepsOldLeftovers(t *testing.T) {
	ctx := context.Background()
	c := &Catalog{Store: memory.New(), Layout: catalog.Layout{Cluster: "main"}}
	day := time.Date(2026, 11, 1, 0, 5, 0, 0, time.UTC)
	for i := range 3 {
		at := day.AddDate(0, 0, i)
		id := at.Format("20060102T150405Z")
		putDump(t, c, &Info{ID: id, Kind: KindDatabase, Database: "a/b", StartTime: at})
		putDump(t, c, &Info{ID: id, Kind: KindGlobals, StartTime: at})
	}
	// A dump that never finished: its data object, no dump.json.
	orphan := c.Layout.DumpPrefix(DatabaseDir("a/b"), "20261104T000500Z") + "dump.pgdump.zst"
	if err := c.Store.Create(ctx, orphan, strings.NewReader("x"), 1, nil); err != nil {
		t.Fatal(err)
	}
	policy := Policy{Daily: 2, Location: time.UTC}

	// Within a day of the orphan, only the oldest dump of each goes.
	res, err := c.Prune(ctx, policy, time.Now().Add(time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 2 || len(res.Kept) != 4 || len(res.Leftover) != 0 {
		t.Fatalf("dry run: %+v", res)
	}
	if n := len(keys(t, c.Store)); n != 13 {
		t.Fatalf("a dry run deleted: %d objects left", n)
	}
	res, err = c.Prune(ctx, policy, time.Now().Add(25*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deleted) != 2 || !slices.Equal(res.Leftover, []string{"main/dumps/a%2Fb/20261104T000500Z/"}) {
		t.Fatalf("prune: %+v", res)
	}
	left := keys(t, c.Store)
	if len(left) != 8 || slices.ContainsFunc(left, func(k string) bool { return strings.Contains(k, "20261101") || strings.Contains(k, "20261104") }) {
		t.Fatalf("left after prune: %v", left)
	}
	dumps, err := c.List(ctx, DatabaseDir("a/b"))
	if err != nil || len(dumps) != 2 || dumps[0].Database != "a/b" {
		t.Fatalf("List(a/b) = %v, %v", dumps, err)
	}
	globals, err := c.List(ctx, catalog.GlobalsDumpDir)
	if err != nil || len(globals) != 2 || globals[0].Kind != KindGlobals {
		t.Fatalf("List(globals) = %v, %v", globals, err)
	}
}

func TestListRefusesDumpJSONThatNamesAnotherDump(t *testing.T) {
	ctx := context.Background()
	for name, info := range map[string]*Info{
		"another id":     {ID: "../../wal", Kind: KindDatabase, Database: "shop"},
		"another db":     {ID: "20261101T000500Z", Kind: KindDatabase, Database: "crm"},
		"unknown kind":   {ID: "20261101T000500Z", Kind: "files", Database: "shop"},
		"object path":    {ID: "20261101T000500Z", Kind: KindDatabase, Database: "shop", Object: "../../other/dump.json"},
		"tables in path": {ID: "20261101T000500Z", Kind: KindDatabase, Database: "shop", Object: "dump.pgdump.zst", TablesObject: "/etc/passwd"},
	} {
		c := &Catalog{Store: memory.New(), Layout: catalog.Layout{Cluster: "main"}}
		info.Format = InfoFormat
		if info.Object == "" {
			info.Object = "dump.pgdump.zst"
		}
		data, _ := marshalInfo(info)
		key := c.Layout.DumpInfoKey(DatabaseDir("shop"), "20261101T000500Z")
		if err := c.putJSON(ctx, key, data); err != nil {
			t.Fatal(err)
		}
		_, err := c.List(ctx, "")
		if err == nil || !strings.Contains(err.Error(), "does not describe the dump it sits in") {
			t.Errorf("%s: List error = %v", name, err)
		}
		if _, err := c.Prune(ctx, DefaultPolicy(time.UTC), time.Now(), false); err == nil {
			t.Errorf("%s: Prune went ahead", name)
		}
		if _, err := c.Store.Stat(ctx, key); errors.Is(err, storage.ErrNotExist) {
			t.Errorf("%s: Prune deleted what it could not trust", name)
		}
	}
}

func TestPickDrillTakesOnlyLastWeeksDatabaseDumps(t *testing.T) {
	ctx := context.Background()
	c := &Catalog{Store: memory.New(), Layout: catalog.Layout{Cluster: "main"}}
	now := time.Date(2026, 11, 22, 6, 0, 0, 0, time.UTC)
	cfg := DrillConfig{Catalog: *c, Now: func() time.Time { return now }}
	if _, err := pickDrill(ctx, cfg); err == nil || !strings.Contains(err.Error(), "no dump of any database in the last 168h0m0s") {
		t.Fatalf("empty repository: %v", err)
	}
	old := now.Add(-8 * 24 * time.Hour)
	putDump(t, c, &Info{ID: old.Format("20060102T150405Z"), Kind: KindDatabase, Database: "shop", StartTime: old})
	putDump(t, c, &Info{ID: now.Format("20060102T150405Z"), Kind: KindGlobals, StartTime: now})
	if _, err := pickDrill(ctx, cfg); err == nil || !strings.Contains(err.Error(), "nightly dumps are not being made") {
		t.Fatalf("only an old dump and the globals: %v", err)
	}
	recent := now.Add(-time.Hour)
	putDump(t, c, &Info{ID: recent.Format("20060102T150405Z"), Kind: KindDatabase, Database: "crm", StartTime: recent})
	for range 20 {
		d, err := pickDrill(ctx, cfg)
		if err != nil || d.Database != "crm" {
			t.Fatalf("pick = %v, %v; want the one recent database dump", d, err)
		}
	}
	cfg.Database = "shop"
	if _, err := pickDrill(ctx, cfg); err == nil || !strings.Contains(err.Error(), `database "shop"`) {
		t.Fatalf("--database shop with only an old dump: %v", err)
	}
	cfg.ID = old.Format("20060102T150405Z") // by id, age does not matter
	if d, err := pickDrill(ctx, cfg); err != nil || d.ID != cfg.ID {
		t.Fatalf("--id of an old dump = %v, %v", d, err)
	}
}
