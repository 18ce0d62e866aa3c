package wal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// PartialSuffix marks the spool file of the segment being received.
const PartialSuffix = ".partial"

// DefaultStatusInterval is how often a Receiver reports its positions.
const DefaultStatusInterval = 10 * time.Second

// Receiver writes the WAL of a physical replication stream into a spool
// directory, one file per segment: <segment>.partial while it is being
// received (full size, zeros past the received end), renamed to <segment>
// once complete and fsynced. It reports to the server the flush position
// that Flushed gives, never more, so the replication slot keeps every
// byte that is not yet durably stored downstream.
type Receiver struct {
	// Dir is the spool directory; it must exist.
	Dir string
	// SegmentSize is the server's wal_segment_size.
	SegmentSize uint32
	// StatusInterval defaults to DefaultStatusInterval.
	StatusInterval time.Duration
	// Flushed returns the position to report as flushed: the end of the
	// WAL durably stored downstream (never more than received is sent).
	Flushed func() LSN
	// OnStatus is called with the positions each status update sent.
	OnStatus func(write, flush LSN)
	// OnSegment is called, on the receiving goroutine, once segment segNo
	// of timeline tli is complete and durable in Dir.
	OnSegment func(tli uint32, segNo uint64)
	// OnProgress is called after every chunk of WAL written, and on
	// keepalives, with the positions so far.
	OnProgress func(Progress)
	// Pause reports whether receiving must stop for now (the spool is
	// full); Stream then returns ErrPaused.
	Pause func() bool
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Progress is where a stream stands.
type Progress struct {
	Timeline  uint32
	Received  LSN       // end of the WAL written to the spool
	ServerEnd LSN       // the server's current end of WAL
	At        time.Time // when the server sent it
}

// ErrPaused is returned by Stream when Pause asked it to stop.
var ErrPaused = errors.New("receiving paused: spool full")

// TimelineEnd is returned by Stream when the server has ended the timeline
// being streamed (a promotion): streaming goes on with Next from Start.
type TimelineEnd struct {
	Timeline uint32 // the timeline that ended
	End      LSN    // where it ended: the switch point
	Next     uint32
	Start    LSN
}

func (e *TimelineEnd) Error() string {
	return fmt.Sprintf("timeline %d ended at %s; timeline %d starts at %s", e.Timeline, e.End, e.Next, e.Start)
}

// SpoolPath is the spool file of a segment; partial selects the name used
// while it is being received.
func (r *Receiver) SpoolPath(tli uint32, segNo uint64, partial bool) string {
	p := filepath.Join(r.Dir, SegmentName(tli, segNo, r.SegmentSize))
	if partial {
		p += PartialSuffix
	}
	return p
}

// Stream runs START_REPLICATION for timeline tli from start, which must be
// a segment boundary, on a replication connection, and writes what
// arrives until ctx ends, an error occurs, Pause asks, or the timeline
// ends (*TimelineEnd).
func (r *Receiver) Stream(ctx context.Context, conn *pgconn.PgConn, slot string, tli uint32, start LSN) error {
	if uint64(start)%uint64(r.SegmentSize) != 0 {
		return fmt.Errorf("stream: start %s is not at a segment boundary", start)
	}
	log := r.logger().With("timeline", tli)
	err := pglogrepl.StartReplication(ctx, conn, slot, pglogrepl.LSN(start),
		pglogrepl.StartReplicationOptions{Mode: pglogrepl.PhysicalReplication, Timeline: int32(tli)})
	if err != nil {
		return fmt.Errorf("START_REPLICATION %s on timeline %d: %w", start, tli, err)
	}
	log.Info("streaming started", "lsn", start)

	s := &session{r: r, conn: conn, tli: tli, received: start}
	defer s.closeFile()
	interval := r.StatusInterval
	if interval <= 0 {
		interval = DefaultStatusInterval
	}
	nextStatus := time.Now()
	for {
		if r.Pause != nil && r.Pause() {
			return errors.Join(ErrPaused, s.sendStatus())
		}
		// Report on schedule, and at once when more WAL became durable
		// downstream: the primary's view of the lag is then current.
		if !time.Now().Before(nextStatus) || s.flushedMoved() {
			if err := s.sendStatus(); err != nil {
				return err
			}
			nextStatus = time.Now().Add(interval)
		}
		rctx, cancel := context.WithDeadline(ctx, nextStatus)
		msg, err := conn.ReceiveMessage(rctx)
		cancel()
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue // time for a status update
			}
			return fmt.Errorf("receive: %w", err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				return errors.New("receive: empty CopyData message")
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				pkm, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("receive keepalive: %w", err)
				}
				s.progress(LSN(pkm.ServerWALEnd), pkm.ServerTime)
				if pkm.ReplyRequested {
					nextStatus = time.Time{}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("receive WAL: %w", err)
				}
				// WALData points into the connection's buffer: it is written
				// out before the next receive, never kept.
				if err := s.write(LSN(xld.WALStart), xld.WALData); err != nil {
					return err
				}
				s.progress(LSN(xld.ServerWALEnd), xld.ServerTime)
			default:
				log.Debug("ignoring unknown replication message", "type", msg.Data[0])
			}
		case *pgproto3.CopyDone:
			// The server ended the timeline: finish the copy and read where
			// the next one starts.
			s.sendStatus()
			cdr, err := pglogrepl.SendStandbyCopyDone(ctx, conn)
			if err != nil {
				return fmt.Errorf("end of timeline %d: %w", tli, err)
			}
			if cdr == nil {
				return fmt.Errorf("end of timeline %d: the server did not say which timeline follows", tli)
			}
			if err := s.syncFile(); err != nil {
				return err
			}
			return &TimelineEnd{Timeline: tli, End: s.received, Next: uint32(cdr.Timeline), Start: LSN(cdr.LSN)}
		case *pgproto3.ErrorResponse:
			return pgconn.ErrorResponseToPgError(msg)
		case *pgproto3.CommandComplete, *pgproto3.ReadyForQuery:
			// The server ended the stream without a timeline switch: it is
			// shutting down.
			return errors.Join(errors.New("the server ended streaming (shutting down?)"), s.syncFile())
		case *pgproto3.NoticeResponse:
		default:
			return fmt.Errorf("receive: unexpected message %T", msg)
		}
	}
}

func (r *Receiver) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

// session is one START_REPLICATION.
type session struct {
	r        *Receiver
	conn     *pgconn.PgConn
	tli      uint32
	received LSN // end of what was written
	file     *os.File
	fileSeg  uint64
	sent     LSN // the flush position last reported
}

// flushedMoved reports whether downstream stored more than last reported.
func (s *session) flushedMoved() bool {
	return s.r.Flushed != nil && min(s.r.Flushed(), s.received) > s.sent
}

// write puts data, which starts at lsn, into the segment files.
func (s *session) write(lsn LSN, data []byte) error {
	if lsn != s.received {
		return fmt.Errorf("receive: WAL arrived for %s, expected %s: the stream has a gap", lsn, s.received)
	}
	seg := uint64(s.r.SegmentSize)
	for len(data) > 0 {
		segNo := uint64(s.received) / seg
		if s.file == nil {
			if err := s.openFile(segNo); err != nil {
				return err
			}
		}
		off := uint64(s.received) % seg
		n := min(uint64(len(data)), seg-off)
		if _, err := s.file.WriteAt(data[:n], int64(off)); err != nil {
			return fmt.Errorf("spool write: %w", err)
		}
		data = data[n:]
		s.received += LSN(n)
		if off+n == seg {
			if err := s.completeFile(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *session) openFile(segNo uint64) error {
	p := s.r.SpoolPath(s.tli, segNo, true)
	// Not truncated: a restart rewrites the segment from its start with the
	// same WAL, so a concurrent reader of the old bytes still reads WAL.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	// Full size from the start, zeros past the received end, as
	// PostgreSQL's own partial segments are.
	if err := f.Truncate(int64(s.r.SegmentSize)); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	s.file, s.fileSeg = f, segNo
	return nil
}

func (s *session) syncFile() error {
	if s.file == nil {
		return nil
	}
	if err := s.file.Sync(); err != nil {
		return fmt.Errorf("spool fsync: %w", err)
	}
	return nil
}

// completeFile makes the finished segment durable under its final name.
func (s *session) completeFile() error {
	if err := s.syncFile(); err != nil {
		return err
	}
	if err := s.file.Close(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.file = nil
	from, to := s.r.SpoolPath(s.tli, s.fileSeg, true), s.r.SpoolPath(s.tli, s.fileSeg, false)
	if err := os.Rename(from, to); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.r.Dir); err != nil {
		return err
	}
	if s.r.OnSegment != nil {
		s.r.OnSegment(s.tli, s.fileSeg)
	}
	return nil
}

func (s *session) closeFile() {
	if s.file != nil {
		s.file.Close()
		s.file = nil
	}
}

func (s *session) progress(serverEnd LSN, at time.Time) {
	if s.r.OnProgress != nil {
		s.r.OnProgress(Progress{Timeline: s.tli, Received: s.received, ServerEnd: serverEnd, At: at})
	}
}

// sendStatus reports received WAL as written, and as flushed only what is
// stored downstream. WALFlushPosition is always set: pglogrepl would
// otherwise report the write position as flushed.
func (s *session) sendStatus() error {
	var flushed LSN
	if s.r.Flushed != nil {
		flushed = min(s.r.Flushed(), s.received)
	}
	flushed = max(flushed, 1) // 0 would make pglogrepl report the write position
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), s.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(s.received),
		WALFlushPosition: pglogrepl.LSN(flushed),
		WALApplyPosition: pglogrepl.LSN(flushed),
	})
	if err != nil {
		return fmt.Errorf("send status: %w", err)
	}
	s.sent = flushed
	if s.r.OnStatus != nil {
		s.r.OnStatus(s.received, flushed)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
