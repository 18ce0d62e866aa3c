package dump

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/internal/conninfo"
	"github.com/pgward/pgward/seal"
)

// DrillWindow is how far back a drill picks its dump from.
const DrillWindow = 7 * 24 * time.Hour

// DrillConfig is one restore drill.
type DrillConfig struct {
	Catalog
	Opener *seal.Opener
	// Database limits the pick to one database; ID picks one dump.
	Database, ID string
	// Target is a connection string to a server where the drill may
	// create and drop a scratch database; empty starts a throwaway local
	// cluster.
	Target string
	Tools  Tools
	Now    func() time.Time
	// Progress, if set, is told of the stored bytes of the dump read.
	Progress func(done, total int64)
}

// DrillReport is what a drill found.
type DrillReport struct {
	OK         bool          `json:"ok"`
	Database   string        `json:"database,omitempty"`
	DumpID     string        `json:"dump_id,omitempty"`
	DumpTime   time.Time     `json:"dump_time,omitzero"`
	Target     string        `json:"target"`
	Scratch    string        `json:"scratch_database,omitempty"`
	Tables     int           `json:"tables"`
	TablesSeen int           `json:"tables_restored"`
	Rows       int64         `json:"rows"`
	RowsSeen   int64         `json:"rows_restored"`
	Mismatches []string      `json:"mismatches,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
	Error      string        `json:"error,omitempty"`
}

// Drill restores a random recent dump into a scratch database and checks
// that pg_restore succeeded and that the tables and each table's rows are
// what the dump recorded. The scratch database (or cluster) is removed
// whatever happens. A failed drill returns a report with OK false and the
// error.
func Drill(ctx context.Context, cfg DrillConfig) (*DrillReport, error) {
	begun := time.Now()
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rep := &DrillReport{Target: "throwaway local cluster"}
	err := drill(ctx, cfg, rep)
	rep.Duration = time.Since(begun)
	rep.OK = err == nil
	if err != nil {
		rep.Error = err.Error()
	}
	return rep, err
}

func drill(ctx context.Context, cfg DrillConfig, rep *DrillReport) error {
	pick, err := pickDrill(ctx, cfg)
	if err != nil {
		return err
	}
	rep.Database, rep.DumpID, rep.DumpTime = pick.Database, pick.ID, pick.StartTime
	rep.Tables, rep.Rows = pick.Tables, pick.Rows
	tables, err := readTables(ctx, cfg, pick)
	if err != nil {
		return err
	}
	var target conninfo.Params
	if cfg.Target != "" {
		if target, err = conninfo.Parse(cfg.Target); err != nil {
			return fmt.Errorf("--drill-target: %w", err)
		}
		rep.Target = target.Without("dbname").Describe()
	} else {
		major, _ := strconv.Atoi(strings.SplitN(pick.ServerVersion, ".", 2)[0])
		sc, err := startScratchCluster(ctx, cfg.Tools, major, cfg.Logger)
		if err != nil {
			return err
		}
		defer sc.stop()
		target = sc.params
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	rep.Scratch = "pgward_drill_" + strings.ToLower(pick.ID) + "_" + hex.EncodeToString(suffix[:])
	into := target.With("dbname", rep.Scratch)
	cfg.Logger.Info("drill: restoring", "database", pick.Database, "dump_id", pick.ID, "scratch", rep.Scratch, "target", rep.Target)
	defer func() {
		if err := dropDatabase(context.WithoutCancel(ctx), target, rep.Scratch); err != nil {
			cfg.Logger.Warn("drill: could not drop the scratch database", "database", rep.Scratch, "err", err)
		}
	}()
	// The scratch database must be new: never restore into what exists.
	if err := Restore(ctx, RestoreConfig{Catalog: cfg.Catalog, Opener: cfg.Opener, Dump: pick, Into: into.String(), NoOwner: true, Tools: cfg.Tools, Progress: cfg.Progress}); err != nil {
		return err
	}
	return checkRestored(ctx, into, pick, tables, rep)
}

// pickDrill picks the dump to drill: by ID, else a random one of the
// last week (of Database, if given).
func pickDrill(ctx context.Context, cfg DrillConfig) (*Info, error) {
	dir := ""
	if cfg.Database != "" {
		dir = DatabaseDir(cfg.Database)
	}
	dumps, err := cfg.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	var recent []*Info
	since := cfg.Now().Add(-DrillWindow)
	for _, d := range dumps {
		if d.Kind != KindDatabase {
			continue
		}
		if cfg.ID != "" {
			if d.ID == cfg.ID {
				return d, nil
			}
			continue
		}
		if !d.StartTime.Before(since) {
			recent = append(recent, d)
		}
	}
	what := "any database"
	if cfg.Database != "" {
		what = fmt.Sprintf("database %q", cfg.Database)
	}
	if cfg.ID != "" {
		return nil, fmt.Errorf("no dump %s of %s", cfg.ID, what)
	}
	if len(recent) == 0 {
		return nil, fmt.Errorf("no dump of %s in the last %s (since %s): nightly dumps are not being made", what, DrillWindow, since.UTC().Format(time.RFC3339))
	}
	return recent[mrand.IntN(len(recent))], nil
}

func readTables(ctx context.Context, cfg DrillConfig, info *Info) ([]TableStats, error) {
	if info.TablesObject == "" {
		return nil, nil
	}
	key := cfg.Layout.DumpPrefix(info.Dir(), info.ID) + info.TablesObject
	rc, _, err := cfg.Store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	plain, err := cfg.Opener.NewReader(rc, seal.Expect{Key: key, Kind: seal.KindDumpTables, Size: -1})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	defer plain.Close()
	data, err := seal.ReadAll(plain, 256<<20)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", key, err)
	}
	var tables []TableStats
	if err := json.Unmarshal(data, &tables); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return tables, nil
}

// checkRestored compares the restored database with what the dump
// recorded: the number of tables, and the rows of each.
func checkRestored(ctx context.Context, into conninfo.Params, info *Info, tables []TableStats, rep *DrillReport) error {
	conn, err := connect(ctx, into, "")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
		AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`).
		Scan(&rep.TablesSeen); err != nil {
		return fmt.Errorf("count restored tables: %w", err)
	}
	if info.TablesObject == "" {
		return nil // the dump's contents were not counted; pg_restore succeeding is all there is
	}
	if rep.TablesSeen != info.Tables {
		rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("%d tables restored, %d dumped", rep.TablesSeen, info.Tables))
	}
	for _, t := range tables {
		var n int64
		name := pgx.Identifier{t.Schema, t.Name}.Sanitize()
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM ONLY "+name).Scan(&n); err != nil {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		rep.RowsSeen += n
		if n != t.Rows {
			rep.Mismatches = append(rep.Mismatches, fmt.Sprintf("%s: %d rows restored, %d dumped", name, n, t.Rows))
		}
	}
	if len(rep.Mismatches) > 0 {
		return fmt.Errorf("restored database differs from the dump: %s", strings.Join(rep.Mismatches, "; "))
	}
	return nil
}

var errRootScratch = errors.New("a throwaway cluster cannot run as root and there is no postgres user: give --drill-target")
