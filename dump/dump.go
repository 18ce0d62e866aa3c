// Package dump makes logical dumps of a cluster's databases (pg_dump,
// per database, from the replica), each sealed to its customer's
// recipients and signed, lists and prunes them (daily/weekly/monthly),
// restores them into a new database, and drills restores of them.
package dump

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/internal/conninfo"
	"github.com/pgward/pgward/seal"
)

// KeySource says whom each dump is sealed to: a KeyMap, or one set of
// recipients for all (Fixed).
type KeySource interface {
	For(database string) (Recipients, error)
	ForGlobals() (Recipients, error)
}

// Fixed seals every dump to the same recipients.
type Fixed Recipients

func (f Fixed) For(string) (Recipients, error)  { return Recipients(f), nil }
func (f Fixed) ForGlobals() (Recipients, error) { return Recipients(f), nil }

// Config is one run of pgward dump.
type Config struct {
	Catalog
	Source    string   // connection string of the server to dump (the replica)
	Databases []string // none: every connectable database but the templates
	Globals   bool     // also dump roles and tablespaces (pg_dumpall --globals-only)
	Keys      KeySource
	Tools     Tools
	// Retries is how many times a dump cancelled by a recovery conflict is
	// tried again; RetryDelay is the wait before the first retry (doubling).
	Retries    int
	RetryDelay time.Duration
	// PauseReplay pauses WAL replay on a standby source while each dump
	// runs, so that no recovery conflict can cancel it.
	PauseReplay bool
	Now         func() time.Time
	// Progress, if set, hears of each dump's plaintext bytes, against the
	// database's size on disk (a rough total).
	Progress func(database string, done, total int64)
}

// Result is a run's outcome: the dumps made, and the databases that
// failed.
type Result struct {
	Dumps  []*Info
	Failed []Failure
}

// Failure is one database whose dump failed.
type Failure struct {
	Database string
	Err      error
}

func (f Failure) Error() string { return fmt.Sprintf("%s: %v", f.Database, f.Err) }

// Err sums up the failures, or returns nil.
func (r *Result) Err() error {
	if len(r.Failed) == 0 {
		return nil
	}
	names := make([]string, len(r.Failed))
	for i, f := range r.Failed {
		names[i] = f.Database
	}
	return fmt.Errorf("%d of %d dumps failed (%s)", len(r.Failed), len(r.Failed)+len(r.Dumps), strings.Join(names, ", "))
}

// server is what a run learns of the source.
type server struct {
	params                conninfo.Params
	version               string // server_version, e.g. "15.18 (Debian …)"
	major                 int
	inRecovery            bool
	pgDump, pgDumpVersion string
	pgDumpAll             string
}

// database is one dump to make: a database, or the globals.
type database struct {
	name, owner string
	size        int64
	globals     bool
}

// label names the dump in messages.
func (d database) label() string {
	if d.globals {
		return "(globals)"
	}
	return d.name
}

// Run dumps the databases (and the globals) of the source, one at a
// time. A database that fails does not stop the others; the Result lists
// it. An error is returned only when nothing could be tried.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RetryDelay == 0 {
		cfg.RetryDelay = 5 * time.Second
	}
	params, err := conninfo.Parse(cfg.Source)
	if err != nil {
		return nil, fmt.Errorf("--source: %w", err)
	}
	srv := &server{params: params}
	conn, err := connect(ctx, params, "")
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var versionNum int
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version'), current_setting('server_version_num')::int, pg_is_in_recovery()").
		Scan(&srv.version, &versionNum, &srv.inRecovery); err != nil {
		return nil, fmt.Errorf("query %s: %w", params.Describe(), err)
	}
	srv.major = versionNum / 10000
	if srv.pgDump, err = cfg.Tools.Find("pg_dump", srv.major); err != nil {
		return nil, err
	}
	version, major, err := ProgramVersion(ctx, srv.pgDump)
	if err != nil {
		return nil, err
	}
	srv.pgDumpVersion = version
	if err := CheckClientVersion(srv.pgDump, version, major, strings.Fields(srv.version)[0], srv.major); err != nil {
		return nil, err
	}
	if cfg.Globals {
		if srv.pgDumpAll, err = cfg.Tools.Find("pg_dumpall", srv.major); err != nil {
			return nil, err
		}
	}
	dbs, err := listDatabases(ctx, conn, cfg.Databases)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", params.Describe(), err)
	}
	if cfg.PauseReplay && !srv.inRecovery {
		cfg.Logger.Info("the source is a primary: --pause-replay has nothing to pause")
	}
	res := &Result{}
	if cfg.Globals {
		dbs = append([]database{{globals: true}}, dbs...)
	}
	for _, db := range dbs {
		info, err := cfg.withRetries(ctx, srv, db)
		if err != nil {
			res.Failed = append(res.Failed, Failure{Database: db.label(), Err: err})
			if ctx.Err() != nil {
				return res, nil
			}
			continue
		}
		res.Dumps = append(res.Dumps, info)
	}
	return res, nil
}

func connect(ctx context.Context, params conninfo.Params, dbname string) (*pgx.Conn, error) {
	p := params
	if dbname != "" {
		p = params.With("dbname", dbname)
	}
	if p.Get("application_name") == "" {
		p = p.With("application_name", "pgward dump")
	}
	cfg, err := pgx.ParseConfig(p.String())
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", p.Describe(), err)
	}
	return conn, nil
}

func listDatabases(ctx context.Context, conn *pgx.Conn, want []string) ([]database, error) {
	rows, err := conn.Query(ctx, `SELECT datname, pg_get_userbyid(datdba), pg_database_size(oid)
		FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname`)
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (database, error) {
		var d database
		err := r.Scan(&d.name, &d.owner, &d.size)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list databases: %w", err)
	}
	if len(want) == 0 {
		return all, nil
	}
	var out []database
	for i, name := range want {
		if slices.Contains(want[:i], name) {
			continue // named twice: dump once
		}
		found := false
		for _, d := range all {
			if d.name == name {
				out, found = append(out, d), true
				break
			}
		}
		if !found {
			names := make([]string, len(all))
			for i, d := range all {
				names[i] = d.name
			}
			return nil, fmt.Errorf("no connectable database %q (there are: %s)", name, strings.Join(names, ", "))
		}
	}
	return out, nil
}

// errConflict marks a dump a recovery conflict cancelled.
var errConflict = errors.New("cancelled by a recovery conflict on the standby")

// isRecoveryConflict reports whether pg_dump's error text is a standby
// cancelling it for replay (SQLSTATE 40001, or the connection ended for
// the same reason).
func isRecoveryConflict(stderr string) bool {
	return strings.Contains(stderr, "conflict with recovery")
}

func (cfg *Config) withRetries(ctx context.Context, srv *server, db database) (*Info, error) {
	delay := cfg.RetryDelay
	for attempt := 1; ; attempt++ {
		info, err := cfg.dumpOne(ctx, srv, db, attempt)
		if err == nil {
			return info, nil
		}
		if !errors.Is(err, errConflict) || attempt > cfg.Retries || ctx.Err() != nil {
			cfg.Logger.Error("dump failed", "database", db.label(), "attempt", attempt, "err", err)
			return nil, err
		}
		cfg.Logger.Warn("dump cancelled by a recovery conflict; retrying", "database", db.label(), "attempt", attempt, "retry_in", delay, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay *= 2
	}
}

// dumpOne runs pg_dump (or pg_dumpall --globals-only) and streams its
// output sealed into the repository; dump.json comes last.
func (cfg *Config) dumpOne(ctx context.Context, srv *server, db database, attempt int) (*Info, error) {
	globals := db.globals
	info := &Info{Format: InfoFormat, Kind: KindDatabase, Database: db.name, Owner: db.owner,
		ServerVersion: srv.version, PgDumpVersion: srv.pgDumpVersion, Attempts: attempt, Object: dataObject}
	var keys Recipients
	var err error
	if globals {
		info.Kind, info.Object = KindGlobals, globalsObject
		keys, err = cfg.Keys.ForGlobals()
	} else {
		keys, err = cfg.Keys.For(db.name)
	}
	if err != nil {
		return nil, err
	}
	info.Recipients = keys.Keys
	sealer := keys.Sealer().SignWith(cfg.Signer)
	info.Object += sealer.Suffix()
	info.StartTime = cfg.Now().UTC()
	info.ID = info.StartTime.Format("20060102T150405Z")
	log := cfg.Logger.With("database", info.Name(), "dump_id", info.ID)

	if !globals {
		if info.RowEstimate, err = rowEstimate(ctx, srv.params, db.name); err != nil {
			return nil, err
		}
	}
	if cfg.PauseReplay && srv.inRecovery {
		resume, err := pauseReplay(ctx, srv.params, log)
		if err != nil {
			return nil, err
		}
		defer resume()
		info.ReplayPaused = true
	}

	var cmd *exec.Cmd
	name := "pg_dump"
	if globals {
		name = "pg_dumpall"
		connStr, env := srv.params.Command()
		cmd = command(ctx, srv.pgDumpAll, env, "--globals-only", "--dbname="+connStr)
	} else {
		connStr, env := srv.params.With("dbname", db.name).Command()
		cmd = command(ctx, srv.pgDump, env, "--format=custom", "--compress=0", "--dbname="+connStr)
	}
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	widenPipe(stdout)
	log.Info("dump started", "program", name, "attempt", attempt)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}

	key := cfg.Layout.DumpPrefix(info.Dir(), info.ID) + info.Object
	obj, err := catalog.NewObjectWriter(ctx, cfg.Store.Create, key, sealer, seal.Claims{Kind: seal.KindDump}, map[string]string{"pgward-kind": "dump"})
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	plain := &countingWriter{w: obj}
	if cfg.Progress != nil {
		plain.progress = func(n int64) { cfg.Progress(info.Name(), n, db.size) }
	}
	tee := io.TeeReader(stdout, plain)
	var stats *ArchiveStats
	var statsErr error
	if globals {
		_, statsErr = io.Copy(io.Discard, tee)
	} else {
		stats, statsErr = ReadArchiveStats(tee)
	}
	if isWriteError(statsErr) {
		cmd.Process.Kill() // storing failed: pg_dump would block on a full pipe
	}
	waitErr := cmd.Wait()
	switch {
	case waitErr != nil && isWriteError(statsErr):
		err = fmt.Errorf("store dump: %w", statsErr)
	case waitErr != nil:
		err = programError(name, waitErr, stderr)
		if isRecoveryConflict(stderr.String()) {
			err = fmt.Errorf("%w: %w", errConflict, err)
		}
	case statsErr != nil && (globals || plain.n == 0 || isWriteError(statsErr)):
		err = fmt.Errorf("store dump: %w", statsErr)
	}
	if err != nil {
		obj.Abort(err)
		return nil, err
	}
	if err := obj.Close(); err != nil {
		return nil, err
	}
	if statsErr != nil {
		// The dump is whole (pg_dump succeeded) but its contents could not
		// be counted: keep it, and say the drill cannot check rows.
		log.Warn("dump stored, but its tables could not be counted; drills will check only that it restores", "err", statsErr)
	}
	info.DataBytes, info.StoredBytes = plain.n, obj.StoredBytes()
	info.Checksum = obj.Claims().Checksum
	if stats != nil {
		info.Tables, info.Rows = stats.Tables, stats.Rows
		data, _ := json.Marshal(stats.TableData)
		info.TablesObject = tablesObject + sealer.Suffix()
		tkey := cfg.Layout.DumpPrefix(info.Dir(), info.ID) + info.TablesObject
		var sealed bytes.Buffer
		if _, err := sealer.SealBytes(&sealed, data, seal.Claims{Key: tkey, Kind: seal.KindDumpTables}); err != nil {
			return nil, fmt.Errorf("seal %s: %w", tkey, err)
		}
		if err := cfg.Store.Create(ctx, tkey, &sealed, int64(sealed.Len()), nil); err != nil {
			return nil, fmt.Errorf("store %s: %w", tkey, err)
		}
	}
	info.EndTime = cfg.Now().UTC()
	if info.EndTime.Before(info.StartTime) {
		info.EndTime = info.StartTime
	}
	data, err := marshalInfo(info)
	if err != nil {
		return nil, err
	}
	if err := cfg.putJSON(ctx, cfg.Layout.DumpInfoKey(info.Dir(), info.ID), data); err != nil {
		return nil, fmt.Errorf("store dump.json of %s: %w", info.Name(), err)
	}
	log.Info("dump done", "bytes", info.DataBytes, "stored_bytes", info.StoredBytes, "tables", info.Tables, "rows", info.Rows)
	return info, nil
}

// writeError marks an error from the writing side of the tee (sealing or
// storing), as opposed to the archive's contents.
type writeError struct{ err error }

func (e writeError) Error() string { return e.err.Error() }
func (e writeError) Unwrap() error { return e.err }

func isWriteError(err error) bool {
	var we writeError
	return errors.As(err, &we)
}

type countingWriter struct {
	w        io.Writer
	n        int64
	progress func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if c.progress != nil {
		c.progress(c.n)
	}
	if err != nil {
		err = writeError{err}
	}
	return n, err
}

// rowEstimate sums the server's row statistics of the database's tables.
func rowEstimate(ctx context.Context, params conninfo.Params, dbname string) (int64, error) {
	conn, err := connect(ctx, params, dbname)
	if err != nil {
		return 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	err = conn.QueryRow(ctx, `SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("row estimate of %s: %w", dbname, err)
	}
	return n, nil
}

// widenPipe grows pg_dump's output pipe from 64 KiB to 1 MiB (Linux's
// limit for unprivileged processes), so pg_dump keeps writing while a
// frame is compressed instead of waiting on every full pipe: the dump and
// the sealing then run side by side.
func widenPipe(r io.Reader) {
	sc, ok := r.(syscall.Conn)
	if !ok {
		return
	}
	if raw, err := sc.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 1<<20) // best effort: a smaller pipe only costs speed
		})
	}
}
