package basebackup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/time/rate"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// DefaultWALTimeout bounds the wait for the WAL a backup needs.
const DefaultWALTimeout = 10 * time.Minute

// Config configures one backup.
type Config struct {
	// Conn connects to the server to back up (typically the replica);
	// Take sets replication=true.
	Conn *pgconn.Config
	// Archive gives the repository, its layout and the sealer.
	Archive *archive.Archive
	Options Options
	// PartSize defaults to DefaultPartSize.
	PartSize int64
	// WALTimeout defaults to DefaultWALTimeout.
	WALTimeout time.Duration
	// Lease defaults to DefaultLease.
	Lease time.Duration
	// Progress, if set, is called as the server reports bytes sent.
	Progress func(done, total int64)
	// Limiter, if set, paces what is stored, in bytes per second: the
	// server's sending slows with it (TCP backpressure). Its limit may
	// change while the backup runs (a backup window's end).
	Limiter *rate.Limiter
	Logger  *slog.Logger
	Now     func() time.Time
}

// Take runs one base backup into the repository and returns its
// backup.json. A backup that fails leaves no backup.json; its parts stay
// until `pgward backup delete --force ID` removes them.
func Take(ctx context.Context, cfg Config) (*catalog.BackupInfo, error) {
	log, now := cfg.Logger, cfg.Now
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	partSize := cfg.PartSize
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	walTimeout := cfg.WALTimeout
	if walTimeout <= 0 {
		walTimeout = DefaultWALTimeout
	}
	lease := cfg.Lease
	if lease <= 0 {
		lease = DefaultLease
	}
	a := cfg.Archive
	connCfg := cfg.Conn.Copy()
	if connCfg.RuntimeParams == nil {
		connCfg.RuntimeParams = map[string]string{}
	}
	connCfg.RuntimeParams["replication"] = "true"
	if connCfg.RuntimeParams["application_name"] == "" {
		connCfg.RuntimeParams["application_name"] = "pgward backup"
	}
	conn, err := pgconn.ConnectConfig(ctx, connCfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the backup source: %w", err)
	}
	defer conn.Close(context.Background())

	ident, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	sysid, err := strconv.ParseUint(ident.SystemID, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	major := wal.ServerMajor(conn)
	if major < 15 {
		return nil, fmt.Errorf("the source runs PostgreSQL %s; pgward backup needs 15 or later", conn.ParameterStatus("server_version"))
	}
	segSize, err := wal.ServerSegmentSize(ctx, conn)
	if err != nil {
		return nil, err
	}
	if err := a.EnsureCluster(ctx, sysid, major, segSize); err != nil {
		return nil, fmt.Errorf("backup source: %w", err)
	}

	started := now().UTC()
	// The lock cancels the backup if it is lost (another backup broke it).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lk, err := acquireLock(ctx, a.Store, a.Layout.BackupLockKey(), lease, now, log, func(err error) { cancel(err) })
	if err != nil {
		return nil, err
	}
	defer lk.release(context.WithoutCancel(ctx))
	id, err := newID(ctx, a, started)
	if err != nil {
		return nil, err
	}
	if err := lk.setBackup(id); err != nil {
		return nil, fmt.Errorf("record backup %s in the lock: %w", id, err)
	}

	opts := cfg.Options
	if opts.Label == "" {
		opts.Label = "pgward " + id
	}
	log = log.With("backup_id", id)
	log.Info("base backup started", "source_timeline", ident.Timeline)
	newSink := func() *storeSink {
		return &storeSink{ctx: ctx, store: a.Store, layout: a.Layout, sealer: a.Sealer, id: id, partSize: partSize,
			progress: cfg.Progress, compressed: opts.ServerCompress, limiter: cfg.Limiter}
	}
	sink := newSink()
	res, err := Run(ctx, conn, opts, sink)
	if err != nil && opts.ServerCompress && len(sink.archives) == 0 && cannotCompress(err) {
		// A server built without zstd, or a libzstd without threads,
		// refuses before sending anything: pgward compresses instead.
		log.Warn("the server cannot compress the backup; pgward compresses it instead", "error", err)
		conn.Close(context.Background())
		if conn, err = pgconn.ConnectConfig(ctx, connCfg); err != nil {
			return nil, fmt.Errorf("connect to the backup source: %w", err)
		}
		defer conn.Close(context.Background())
		opts.ServerCompress = false
		sink = newSink()
		res, err = Run(ctx, conn, opts, sink)
	}
	stopped := now().UTC()
	if err != nil {
		sink.fail(err) // the part being written is abandoned, not stored
		sink.finish()
		if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil {
			err = cause
		}
		return nil, fmt.Errorf("base backup %s: %w", id, err)
	}
	if err := sink.finish(); err != nil {
		return nil, fmt.Errorf("base backup %s: %w", id, err)
	}
	if sink.manifest == nil || sink.manifest.Key == "" {
		return nil, fmt.Errorf("base backup %s: the server sent no backup manifest", id)
	}
	log.Info("base backup data stored", "bytes", sink.dataBytes, "stored_bytes", sink.storedBytes,
		"start_lsn", res.Start, "stop_lsn", res.Stop)

	// The backup is usable only with the WAL from its start to its stop.
	if res.StartTLI != res.StopTLI {
		return nil, fmt.Errorf("base backup %s: the source changed timeline during the backup (%d to %d); take it again", id, res.StartTLI, res.StopTLI)
	}
	if err := waitWAL(ctx, a, res, segSize, walTimeout, log); err != nil {
		return nil, fmt.Errorf("base backup %s: %w", id, err)
	}
	info := &catalog.BackupInfo{
		Format: catalog.BackupFormat, ID: id, Label: opts.Label,
		SystemIdentifier: strconv.FormatUint(sysid, 10), PGVersion: major,
		StartLSN: res.Start.String(), StopLSN: res.Stop.String(),
		StartTimeline: res.StartTLI, StopTimeline: res.StopTLI,
		StartTime: started, StopTime: stopped,
		DataBytes: sink.dataBytes, StoredBytes: sink.storedBytes, // the manifest included
		Encrypted: a.Sealer.Encrypted(), Archives: sink.archives, Manifest: *sink.manifest,
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return nil, err
	}
	infoKey := a.Layout.BackupInfoKey(id)
	if b, err = a.Sealer.Signer().SignDocument(append(b, '\n'), infoKey); err != nil {
		return nil, err
	}
	if err := a.Store.Create(ctx, infoKey, bytes.NewReader(b), int64(len(b)), nil); err != nil {
		return nil, fmt.Errorf("base backup %s: write backup.json: %w", id, err)
	}
	log.Info("base backup finished", "duration", now().Sub(started))
	return info, nil
}

// newID names a backup by its start time (sortable), with a suffix when
// that second is taken.
func newID(ctx context.Context, a *archive.Archive, t time.Time) (string, error) {
	base := t.Format("20060102T150405Z")
	for i := 0; i < 100; i++ {
		id := base
		if i > 0 {
			id = fmt.Sprintf("%s-%d", base, i)
		}
		taken := false
		err := a.Store.List(ctx, a.Layout.BackupPrefix(id), func(storage.ObjectInfo) error {
			taken = true
			return errStop
		})
		if err != nil && !errors.Is(err, errStop) {
			return "", fmt.Errorf("list backups: %w", err)
		}
		if !taken {
			return id, nil
		}
	}
	return "", errors.New("no free backup id")
}

var errStop = errors.New("stop")

// cannotCompress tells the server's refusal to compress as asked
// ("invalid compression specification: this build does not support
// compression with ZSTD", "could not set compression worker count")
// from other failures.
func cannotCompress(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "compression")
}

// waitWAL polls until the repository holds the WAL from the backup's start
// to its stop, or the timeout passes.
func waitWAL(ctx context.Context, a *archive.Archive, res Result, segSize uint32, timeout time.Duration, log *slog.Logger) error {
	deadline := time.Now().Add(timeout)
	// The last segment is usually stored within a fraction of a second
	// of the backup's end: look again soon, then every second.
	wait := 50 * time.Millisecond
	logged := false
	from := res.Start
	for {
		missing, err := a.MissingWAL(ctx, res.StopTLI, from, res.Stop, segSize)
		if err == nil && missing == "" {
			return nil
		}
		// The segments before the missing one are stored and stay so: the
		// next look starts at it instead of checking them all again.
		if f, perr := wal.ParseFileName(missing); perr == nil {
			if no, perr := f.SegmentNo(segSize); perr == nil {
				from = max(from, wal.LSN(no*uint64(segSize)))
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("checking the WAL it needs: %w", err)
			}
			return fmt.Errorf("WAL segment %s (needed up to the backup's stop LSN %s) did not reach the repository within %s: "+
				"is archive_command (pgward wal-push) or pgward stream running for this cluster?", missing, res.Stop, timeout)
		}
		if !logged && missing != "" {
			log.Info("waiting for the WAL the backup needs", "segment", missing, "stop_lsn", res.Stop)
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
