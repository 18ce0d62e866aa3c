package stream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/wal"
)

// uploader stores completed segments from the spool, in order, and every
// PartialInterval the segment being received. Failures are retried with
// backoff; the stored position only ever covers WAL stored without a gap.
func (s *Streamer) uploader(ctx context.Context) {
	every := time.Second
	if iv := s.cfg.PartialInterval; iv > 0 && iv < every {
		every = iv
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	var retryAt, lastPartial time.Time
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick.C:
		}
		if time.Now().Before(retryAt) {
			continue
		}
		err := s.storeSegments(ctx)
		if err == nil && s.cfg.PartialInterval > 0 && time.Since(lastPartial) >= s.cfg.PartialInterval {
			if err = s.storePartial(ctx); err == nil {
				lastPartial = time.Now()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.uploadFailed(err)
			retryAt = time.Now().Add(backoff)
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = time.Second
	}
}

// storeSegments stores every complete segment waiting in the spool.
func (s *Streamer) storeSegments(ctx context.Context) error {
	entries, err := os.ReadDir(s.cfg.SpoolDir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range entries {
		if f, err := wal.ParseFileName(e.Name()); err == nil && f.Kind == wal.KindSegment {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names) // timeline, then segment: the order WAL was received in
	segSize := s.segSize.Load()
	s.pending.Store(int64(len(names)) * int64(segSize)) // recount: the spool is the truth
	for _, name := range names {
		path := filepath.Join(s.cfg.SpoolDir, name)
		start := time.Now()
		if _, err := s.cfg.Archive.Push(ctx, path); err != nil {
			return err
		}
		if err := s.cfg.Archive.DeleteStreamPartial(ctx, name); err != nil {
			s.log.Warn("could not remove the partial of a stored segment", "segment", name, "err", err)
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		s.pending.Add(-int64(segSize))
		f, _ := wal.ParseFileName(name)
		no, _ := f.SegmentNo(segSize)
		s.advanceStored(f.Timeline, wal.SegmentStart(no, segSize), wal.SegmentStart(no+1, segSize))
		s.markStored(func(m *Metrics) {
			m.SegmentsUploaded.Inc()
			m.NewestSegment.SetToCurrentTime()
			m.SpoolBytes.Set(float64(s.pending.Load()))
		})
		s.log.Debug("segment stored", "segment", name, "duration", time.Since(start))
	}
	return nil
}

// storePartial stores the segment being received, up to what was
// received, when it grew since the last time and nothing before it waits.
func (s *Streamer) storePartial(ctx context.Context) error {
	s.mu.Lock()
	cur := s.current
	s.mu.Unlock()
	if cur == nil {
		return nil
	}
	segSize := s.segSize.Load()
	end := cur.Received
	segNo := wal.SegmentNo(end, segSize)
	stored := wal.LSN(s.stored.Load())
	// Only a partial that continues what is stored is worth storing (and
	// counting): during a catch-up, the segments before it go first.
	if end <= stored || end == wal.SegmentStart(segNo, segSize) || wal.SegmentStart(segNo, segSize) > stored {
		return nil
	}
	path := filepath.Join(s.cfg.SpoolDir, wal.SegmentName(cur.Timeline, segNo, segSize)+wal.PartialSuffix)
	return s.storePartialFile(ctx, path, cur.Timeline, segNo, end)
}

// storePartialFile stores the spool file of segment segNo up to end as
// the segment's partial.
func (s *Streamer) storePartialFile(ctx context.Context, path string, tli uint32, segNo uint64, end wal.LSN) error {
	segSize := s.segSize.Load()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil // completed meanwhile: stored as a segment instead
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if len(data) != int(segSize) {
		return fmt.Errorf("spool file %s is %d bytes, want %d", path, len(data), segSize)
	}
	// Bytes past end may be half written by the receiver: store zeros.
	clear(data[end-wal.SegmentStart(segNo, segSize):])
	name := wal.SegmentName(tli, segNo, segSize)
	err = s.cfg.Archive.PutStreamPartial(ctx, name, data, end)
	if errors.Is(err, archive.ErrNotStreamPartial) {
		s.log.Info("keeping the partial segment PostgreSQL archived", "segment", name)
		return nil
	}
	if err != nil {
		return err
	}
	s.advanceStored(tli, wal.SegmentStart(segNo, segSize), end)
	s.markStored(func(m *Metrics) { m.NewestPartial.SetToCurrentTime() })
	s.log.Debug("partial segment stored", "segment", name, "lsn", end)
	return nil
}

func (s *Streamer) uploadFailed(err error) {
	s.mu.Lock()
	if s.failingFrom.IsZero() {
		s.failingFrom = time.Now()
	}
	s.mu.Unlock()
	s.markStored(func(m *Metrics) { m.UploadErrors.Inc() })
	if errors.Is(err, archive.ErrConflict) {
		s.log.Error("a segment in the repository differs from the one received; resolve by hand", "err", err)
		return
	}
	s.log.Warn("storing WAL failed; retrying", "err", err)
}

// markStored records a successful store and applies f to the metrics.
func (s *Streamer) markStored(f func(*Metrics)) {
	s.mu.Lock()
	s.failingFrom = time.Time{}
	s.mu.Unlock()
	if s.cfg.Metrics != nil {
		f(s.cfg.Metrics)
	}
}
