package basebackup

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgward/pgward/wal"
)

// Options are BASE_BACKUP's options.
type Options struct {
	Label string
	// Fast asks for an immediate checkpoint; otherwise it is spread.
	Fast bool
	// MaxRate limits the server's sending, in kB/s (32 to 1048576); 0 is
	// unlimited.
	MaxRate int
	// ServerCompress asks the server to compress its archives with zstd
	// (level 1) before sending them: the walsender then sends a twentieth
	// of the bytes of a typical cluster, and compresses in its own
	// threads, which the socket copy and pgward's compression cost more
	// than (issue 12; docs/decisions/20261202_server_side_compression.md).
	ServerCompress bool
	// CompressWorkers is how many zstd threads the server compresses
	// with, besides the walsender itself (0: in the walsender alone).
	CompressWorkers int
}

// MaxCompressWorkers bounds CompressWorkers: more threads than a server
// has cores only cost memory.
const MaxCompressWorkers = 64

func (o Options) sql() string {
	parts := []string{
		"LABEL '" + strings.ReplaceAll(o.Label, "'", "''") + "'",
		"PROGRESS", "TABLESPACE_MAP", "WAIT false",
		// CRC32C, the server's default: SHA-256 took the walsender 1.3 s
		// of 4.7 at 3.7 GiB, and authenticity is the signature's job.
		"MANIFEST 'yes'", "MANIFEST_CHECKSUMS 'CRC32C'",
	}
	if o.ServerCompress {
		detail := "level=1"
		if o.CompressWorkers > 0 {
			detail += fmt.Sprintf(",workers=%d", o.CompressWorkers)
		}
		parts = append(parts, "COMPRESSION 'zstd'", "COMPRESSION_DETAIL '"+detail+"'")
	}
	if o.Fast {
		parts = append(parts, "CHECKPOINT 'fast'")
	} else {
		parts = append(parts, "CHECKPOINT 'spread'")
	}
	if o.MaxRate > 0 {
		parts = append(parts, fmt.Sprintf("MAX_RATE %d", o.MaxRate))
	}
	return "BASE_BACKUP (" + strings.Join(parts, ", ") + ")"
}

// Tablespace is one entry of the server's tablespace list; the main data
// directory has OID 0 and no location.
type Tablespace struct {
	OID      uint32
	Location string
	Size     int64 // estimated bytes, from PROGRESS
}

// Sink receives the backup stream. Archive starts a new archive; Write
// calls carry its bytes; Manifest starts the backup manifest, whose bytes
// come through Write too. Progress reports bytes the server has sent.
type Sink interface {
	Begin(start wal.LSN, tli uint32, tablespaces []Tablespace) error
	Archive(name, location string) error
	Write(p []byte) error
	Manifest() error
	Progress(done int64)
}

// Result is where the backup starts and ends in the WAL.
type Result struct {
	Start, Stop       wal.LSN
	StartTLI, StopTLI uint32
}

// Run sends BASE_BACKUP on a replication connection and feeds the
// stream to sink. The caller must check the server is PostgreSQL 15+.
func Run(ctx context.Context, conn *pgconn.PgConn, opts Options, sink Sink) (Result, error) {
	var res Result
	conn.Frontend().SendQuery(&pgproto3.Query{String: opts.sql()})
	if err := conn.Frontend().Flush(); err != nil {
		return res, fmt.Errorf("send BASE_BACKUP: %w", err)
	}
	// Result sets, in order: the start position, the tablespaces, then
	// (after the COPY stream) the end position. A set is complete when the
	// next one, the COPY or the end begins.
	var (
		sets    int
		rows    [][][]byte
		open    bool
		sawCopy bool
	)
	finish := func() error {
		if !open {
			return nil
		}
		open = false
		var err error
		switch sets {
		case 0:
			res.Start, res.StartTLI, err = positionRow(rows)
		case 1:
			var tbs []Tablespace
			if tbs, err = tablespaceRows(rows); err == nil {
				err = sink.Begin(res.Start, res.StartTLI, tbs)
			}
		case 2:
			res.Stop, res.StopTLI, err = positionRow(rows)
		default:
			err = errors.New("more result sets than expected")
		}
		sets++
		rows = nil
		if err != nil {
			return fmt.Errorf("BASE_BACKUP result %d: %w", sets, err)
		}
		return nil
	}
	for {
		msg, err := conn.ReceiveMessage(ctx)
		if err != nil {
			return res, fmt.Errorf("BASE_BACKUP: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.RowDescription:
			if err := finish(); err != nil {
				return res, err
			}
			open = true
		case *pgproto3.DataRow:
			row := make([][]byte, len(msg.Values))
			for i, v := range msg.Values {
				if v != nil {
					row[i] = append([]byte{}, v...) // valid only until the next receive
				}
			}
			rows = append(rows, row)
		case *pgproto3.CommandComplete:
		case *pgproto3.CopyOutResponse:
			if err := finish(); err != nil {
				return res, err
			}
			if sets != 2 {
				return res, fmt.Errorf("BASE_BACKUP: the backup stream began after %d result sets, want 2", sets)
			}
			sawCopy = true
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				return res, errors.New("BASE_BACKUP: empty COPY message")
			}
			if err := dispatch(msg.Data, sink); err != nil {
				return res, err
			}
		case *pgproto3.CopyDone:
		case *pgproto3.ErrorResponse:
			return res, pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.ReadyForQuery:
			if err := finish(); err != nil {
				return res, err
			}
			if sets != 3 || !sawCopy {
				return res, fmt.Errorf("BASE_BACKUP ended early (after %d result sets)", sets)
			}
			return res, nil
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus, *pgproto3.NotificationResponse:
		default:
			return res, fmt.Errorf("BASE_BACKUP: unexpected message %T", msg)
		}
	}
}

// dispatch handles one CopyData of PostgreSQL 15's backup stream
// (src/backend/backup/basebackup_copy.c).
func dispatch(data []byte, sink Sink) error {
	body := data[1:]
	switch data[0] {
	case 'n': // new archive: name, tablespace location (both C strings)
		name, rest, ok := cstring(body)
		if !ok {
			return errors.New("BASE_BACKUP: malformed new-archive message")
		}
		loc, _, ok := cstring(rest)
		if !ok {
			return errors.New("BASE_BACKUP: malformed new-archive message")
		}
		return sink.Archive(name, loc)
	case 'd':
		return sink.Write(body)
	case 'p':
		if len(body) != 8 {
			return errors.New("BASE_BACKUP: malformed progress message")
		}
		sink.Progress(int64(binary.BigEndian.Uint64(body)))
		return nil
	case 'm':
		return sink.Manifest()
	}
	return fmt.Errorf("BASE_BACKUP: unknown stream message %q: is the server PostgreSQL 15 or later?", data[0])
}

func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

func positionRow(rows [][][]byte) (wal.LSN, uint32, error) {
	if len(rows) != 1 || len(rows[0]) < 2 {
		return 0, 0, fmt.Errorf("want one row of (recptr, tli), got %d rows", len(rows))
	}
	lsn, err := wal.ParseLSN(string(rows[0][0]))
	if err != nil {
		return 0, 0, err
	}
	tli, err := strconv.ParseUint(string(rows[0][1]), 10, 32)
	if err != nil {
		return 0, 0, fmt.Errorf("timeline %q: %w", rows[0][1], err)
	}
	return lsn, uint32(tli), nil
}

func tablespaceRows(rows [][][]byte) ([]Tablespace, error) {
	var out []Tablespace
	for _, r := range rows {
		if len(r) < 3 {
			return nil, errors.New("short tablespace row")
		}
		var t Tablespace
		if r[0] != nil {
			oid, err := strconv.ParseUint(string(r[0]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("tablespace oid %q: %w", r[0], err)
			}
			t.OID = uint32(oid)
		}
		if r[1] != nil {
			t.Location = string(r[1])
		}
		if r[2] != nil {
			size, err := strconv.ParseInt(string(r[2]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("tablespace size %q: %w", r[2], err)
			}
			t.Size = size * 1024 // the server reports kB
		}
		out = append(out, t)
	}
	return out, nil
}
