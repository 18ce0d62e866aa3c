package dump

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgward/pgward/internal/conninfo"
	"github.com/pgward/pgward/seal"
)

// RestoreConfig restores one dump into a database.
type RestoreConfig struct {
	Catalog
	Opener *seal.Opener
	Dump   *Info
	// Into is a connection string naming the target server and database
	// (dbname); the database is created when missing.
	Into string
	// Force restores into an existing database that holds objects,
	// replacing the dump's objects (pg_restore --clean --if-exists).
	Force bool
	// NoOwner leaves ownership and privileges to the connecting role, for
	// a server that lacks the dump's roles.
	NoOwner  bool
	Tools    Tools
	Progress func(done, total int64) // stored bytes read
	// SpoolDir holds the sealed dump while it is verified and restored
	// ("": the system's temporary directory).
	SpoolDir string
}

// Restore creates the target database (or checks that an existing one
// is empty) and runs pg_restore on the unsealed dump in one transaction:
// a failure leaves nothing restored, and a database it created is
// dropped again.
func Restore(ctx context.Context, cfg RestoreConfig) error {
	if cfg.Dump.Kind != KindDatabase {
		return errors.New("only database dumps restore with pg_restore; the globals dump is SQL: unseal it and run it with psql (docs/operations.md)")
	}
	target, err := conninfo.Parse(cfg.Into)
	if err != nil {
		return fmt.Errorf("--into: %w", err)
	}
	dbname := target.Get("dbname")
	if dbname == "" {
		return errors.New("--into names no database: add dbname=NAME (the database to create and restore into)")
	}
	// pg_restore runs the dump's SQL as it reads it, and a transaction
	// rolls back only the database: a forged dump could COPY ... TO
	// PROGRAM before its end told it apart. So the whole object is
	// downloaded (still sealed) and verified first, and pg_restore reads
	// that same local copy.
	spool, err := spoolVerified(ctx, cfg)
	if err != nil {
		return err
	}
	defer spool.Close()
	created, major, err := prepareTarget(ctx, target, dbname, cfg.Force)
	if err != nil {
		return err
	}
	err = pgRestore(ctx, cfg, spool, target, major)
	if err != nil && created {
		if derr := dropDatabase(context.WithoutCancel(ctx), target, dbname); derr != nil {
			cfg.Logger.Warn("could not drop the database created for the failed restore", "database", dbname, "err", derr)
		}
	}
	return err
}

// prepareTarget creates dbname on the target server, or checks that an
// existing one may be restored into. It returns the server's major version.
func prepareTarget(ctx context.Context, target conninfo.Params, dbname string, force bool) (created bool, major int, err error) {
	conn, err := connect(ctx, target, "postgres")
	if err != nil {
		return false, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var versionNum int
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", dbname).
		Scan(&versionNum, &exists); err != nil {
		return false, 0, fmt.Errorf("query %s: %w", target.Describe(), err)
	}
	major = versionNum / 10000
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dbname}.Sanitize()+" TEMPLATE template0"); err != nil {
			return false, 0, fmt.Errorf("create database %q: %w", dbname, err)
		}
		return true, major, nil
	}
	db, err := connect(ctx, target, dbname)
	if err != nil {
		return false, 0, err
	}
	defer db.Close(context.WithoutCancel(ctx))
	var relations int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'`).Scan(&relations); err != nil {
		return false, 0, fmt.Errorf("query %s: %w", target.Describe(), err)
	}
	if relations > 0 && !force {
		return false, 0, fmt.Errorf("database %q already exists on %s and is not empty (%d relations): restore into a new database name, "+
			"or give --force to restore into it (objects in the dump are dropped and recreated)", dbname, target.Without("dbname").Describe(), relations)
	}
	return false, major, nil
}

func dropDatabase(ctx context.Context, target conninfo.Params, dbname string) error {
	conn, err := connect(ctx, target, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{dbname}.Sanitize()+" WITH (FORCE)")
	return err
}

// spoolVerified downloads the sealed dump into an unnamed temporary file
// (in cfg.SpoolDir; it holds only the sealed bytes and vanishes with the
// process) and verifies all of it: signature, size and checksum. It
// returns the file at its start.
func spoolVerified(ctx context.Context, cfg RestoreConfig) (*os.File, error) {
	key := cfg.key()
	rc, _, err := cfg.Store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	f, err := os.CreateTemp(cfg.SpoolDir, "pgward-dump-")
	if err != nil {
		return nil, fmt.Errorf("spool the dump: %w", err)
	}
	os.Remove(f.Name()) // the open file stays; nothing is left behind
	var src io.Reader = io.TeeReader(rc, f)
	if cfg.Progress != nil {
		src = &progressReader{r: src, total: cfg.Dump.StoredBytes, fn: cfg.Progress}
	}
	err = cfg.verifyFrom(src)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("restore dump %s of %s: %w", cfg.Dump.ID, cfg.Dump.Name(), err)
	}
	return f, nil
}

func (cfg RestoreConfig) key() string {
	return cfg.Layout.DumpPrefix(cfg.Dump.Dir(), cfg.Dump.ID) + cfg.Dump.Object
}

func (cfg RestoreConfig) open(sealed io.Reader) (*seal.Reader, error) {
	return cfg.Opener.NewReader(sealed, seal.Expect{Key: cfg.key(), Kind: seal.KindDump, Size: cfg.Dump.DataBytes, Checksum: cfg.Dump.Checksum})
}

// verifyFrom reads a whole sealed dump through every check.
func (cfg RestoreConfig) verifyFrom(sealed io.Reader) error {
	r, err := cfg.open(sealed)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

// pgRestore streams the spooled dump, unsealed and checked again, into
// pg_restore.
func pgRestore(ctx context.Context, cfg RestoreConfig, spool io.Reader, target conninfo.Params, major int) error {
	program, err := cfg.Tools.Find("pg_restore", major)
	if err != nil {
		return err
	}
	plain, err := cfg.open(spool)
	if err != nil {
		return fmt.Errorf("open dump %s of %s: %w", cfg.Dump.ID, cfg.Dump.Name(), err)
	}
	defer plain.Close()

	args := []string{"--exit-on-error", "--single-transaction"}
	if cfg.NoOwner {
		args = append(args, "--no-owner", "--no-privileges")
	}
	if cfg.Force {
		args = append(args, "--clean", "--if-exists")
	}
	connStr, env := target.Command()
	cmd := command(ctx, program, env, append(args, "--dbname="+connStr)...)
	stderr := &tailBuffer{max: 8 << 10}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start pg_restore: %w", err)
	}
	// The reader verifies the whole dump (signature, size, checksum)
	// before it reports the end: until then pg_restore must not commit.
	_, copyErr := io.Copy(stdin, plain)
	if copyErr != nil {
		// Stop pg_restore before it sees the end of its input and commits.
		cmd.Process.Kill()
		cmd.Wait()
		if strings.Contains(copyErr.Error(), "broken pipe") {
			return programError("pg_restore", copyErr, stderr)
		}
		return fmt.Errorf("restore dump %s of %s: %w", cfg.Dump.ID, cfg.Dump.Name(), copyErr)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		return programError("pg_restore", err, stderr)
	}
	return nil
}

type progressReader struct {
	r     io.Reader
	n     int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.fn(p.n, p.total)
	return n, err
}
