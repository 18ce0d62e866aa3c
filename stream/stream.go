package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Defaults for Config's zero values.
const (
	DefaultSlot            = "pgward"
	DefaultPartialInterval = 5 * time.Second
	DefaultSpoolMax        = 1 << 30
	maxBackoff             = 30 * time.Second
)

// Config configures a Streamer.
type Config struct {
	// Conn is the replication connection's configuration; Run sets the
	// replication=true runtime parameter.
	Conn *pgconn.Config
	// Slot is the physical replication slot (default "pgward"), created
	// when missing.
	Slot string
	// SpoolDir holds received WAL until it is stored; it is created.
	SpoolDir string
	// PartialInterval is how often the segment being received is stored
	// as <segment>.partial; negative turns it off (default 5s).
	PartialInterval time.Duration
	// StatusInterval is how often positions are reported to the server
	// (default wal.DefaultStatusInterval).
	StatusInterval time.Duration
	// SpoolMax bounds the completed segments waiting in the spool (default
	// 1 GiB); beyond it, receiving pauses and the slot holds the WAL.
	SpoolMax int64
	// Archive stores segments; it needs a Sealer.
	Archive *archive.Archive
	// Logger defaults to discarding; Metrics may be nil.
	Logger  *slog.Logger
	Metrics *Metrics
}

// Streamer is the sidecar. Create it with New and call Run.
type Streamer struct {
	cfg Config
	log *slog.Logger

	segSize atomic.Uint32
	stored  atomic.Uint64 // wal.LSN durably in the repository
	pending atomic.Int64  // bytes of complete segments in the spool

	mu          sync.Mutex
	current     *wal.Progress // the segment being received, nil if none
	partialEnd  wal.LSN       // end of the newest stored partial
	connected   time.Time     // zero when not streaming
	lastStored  time.Time
	failingFrom time.Time // first upload failure since the last success
	serverTrail []mark    // recent (server LSN, time) pairs, for lag in seconds
	wake        chan struct{}
}

type mark struct {
	lsn wal.LSN
	at  time.Time
}

// New checks cfg and returns a Streamer.
func New(cfg Config) (*Streamer, error) {
	if cfg.Slot == "" {
		cfg.Slot = DefaultSlot
	}
	if err := ValidateSlotName(cfg.Slot); err != nil {
		return nil, err
	}
	if cfg.Conn == nil || cfg.Archive == nil || cfg.SpoolDir == "" {
		return nil, errors.New("stream: Conn, Archive and SpoolDir are required")
	}
	if cfg.PartialInterval == 0 {
		cfg.PartialInterval = DefaultPartialInterval
	}
	if cfg.SpoolMax <= 0 {
		cfg.SpoolMax = DefaultSpoolMax
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Conn = cfg.Conn.Copy()
	if cfg.Conn.ValidateConnect != nil {
		// target_session_attrs was given. pgconn checks it with SQL, which
		// a physical walsender refuses; the in_hot_standby parameter that
		// PostgreSQL 14+ reports at connection says the same.
		cfg.Conn.ValidateConnect = requirePrimary
	}
	if cfg.Conn.RuntimeParams == nil {
		cfg.Conn.RuntimeParams = map[string]string{}
	}
	cfg.Conn.RuntimeParams["replication"] = "true"
	if cfg.Conn.RuntimeParams["application_name"] == "" {
		cfg.Conn.RuntimeParams["application_name"] = "pgward"
	}
	return &Streamer{cfg: cfg, log: cfg.Logger.With("slot", cfg.Slot), wake: make(chan struct{}, 1)}, nil
}

// Run streams until ctx ends. Connection and storage failures are retried
// with backoff; only a configuration that cannot work ends it early.
func (s *Streamer) Run(ctx context.Context) error {
	if err := os.MkdirAll(s.cfg.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("spool directory: %w", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	upCtx, stopUploads := context.WithCancel(ctx)
	defer stopUploads()
	started := false

	backoff := time.Second
	for ctx.Err() == nil {
		begun := time.Now()
		err := s.session(ctx, func() {
			if !started { // uploads need the segment size the first session learns
				started = true
				wg.Go(func() { s.uploader(upCtx) })
			}
		})
		s.setConnected(false)
		if ctx.Err() != nil {
			break
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return fatal.err
		}
		if errors.Is(err, wal.ErrPaused) {
			s.log.Warn("spool full: receiving paused until stored", "spool_bytes", s.pending.Load())
			s.waitSpool(ctx)
			continue
		}
		if time.Since(begun) > time.Minute {
			backoff = time.Second
		}
		s.log.Warn("replication interrupted; reconnecting", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
	return nil
}

// requirePrimary accepts only a server that is not a hot standby.
func requirePrimary(_ context.Context, conn *pgconn.PgConn) error {
	switch conn.ParameterStatus("in_hot_standby") {
	case "off":
		return nil
	case "on":
		return errors.New("the server is a standby (in_hot_standby = on); looking for the primary")
	}
	return errors.New("the server does not report in_hot_standby (PostgreSQL 14 or later is needed for target_session_attrs)")
}

// fatalError ends Run: retrying cannot help.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }

func (s *Streamer) session(ctx context.Context, ready func()) error {
	conn, err := pgconn.ConnectConfig(ctx, s.cfg.Conn)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())

	ident, err := pglogrepl.IdentifySystem(ctx, conn)
	if err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM: %w", err)
	}
	sysid, err := strconv.ParseUint(ident.SystemID, 10, 64)
	if err != nil {
		return fmt.Errorf("IDENTIFY_SYSTEM: system identifier %q: %w", ident.SystemID, err)
	}
	segSize, err := segmentSize(ctx, conn)
	if err != nil {
		return err
	}
	if err := s.cfg.Archive.EnsureCluster(ctx, sysid, serverMajor(conn), segSize); err != nil {
		if errors.Is(err, catalog.ErrOtherSystem) || errors.Is(err, catalog.ErrOtherSegmentSize) {
			return &fatalError{err}
		}
		return err // storage trouble: retried
	}
	if old := s.segSize.Swap(segSize); old != 0 && old != segSize {
		return &fatalError{fmt.Errorf("the server's wal_segment_size changed from %d to %d", old, segSize)}
	}
	ready()

	slot, err := readSlot(ctx, conn, s.cfg.Slot)
	if err != nil {
		return err
	}
	if !slot.exists {
		if err := createSlot(ctx, conn, s.cfg.Slot); err != nil {
			return err
		}
		s.log.Info("replication slot created", "server_timeline", ident.Timeline)
		if slot, err = readSlot(ctx, conn, s.cfg.Slot); err != nil {
			return err
		}
	}
	history, err := s.history(ctx, conn, uint32(ident.Timeline))
	if err != nil {
		return err
	}
	tli, start, err := s.startPoint(ctx, uint32(ident.Timeline), history, slot)
	if err != nil {
		return &fatalError{err}
	}

	recv := &wal.Receiver{
		Dir: s.cfg.SpoolDir, SegmentSize: segSize, StatusInterval: s.cfg.StatusInterval, Logger: s.log,
		Flushed:    func() wal.LSN { return wal.LSN(s.stored.Load()) },
		OnSegment:  s.segmentReceived,
		OnProgress: s.progress,
		Pause:      func() bool { return s.pending.Load() >= s.cfg.SpoolMax },
	}
	for {
		s.setConnected(true)
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Timeline.Set(float64(tli))
		}
		err := recv.Stream(ctx, conn, s.cfg.Slot, tli, start)
		var end *wal.TimelineEnd
		if !errors.As(err, &end) {
			return err
		}
		s.log.Info("timeline ended; following the next one", "timeline", end.Timeline, "lsn", end.End, "next_timeline", end.Next)
		if err := s.finishTimeline(ctx, conn, recv, end); err != nil {
			return err
		}
		tli, start = end.Next, end.Start-wal.LSN(uint64(end.Start)%uint64(segSize))
	}
}

// history fetches the server's timeline history and stores its history
// file, as archive_command would.
func (s *Streamer) history(ctx context.Context, conn *pgconn.PgConn, tli uint32) ([]wal.HistoryEntry, error) {
	if tli <= 1 {
		return nil, nil
	}
	res, err := pglogrepl.TimelineHistory(ctx, conn, int32(tli))
	if err != nil {
		return nil, fmt.Errorf("TIMELINE_HISTORY %d: %w", tli, err)
	}
	entries, err := wal.ParseHistory(strings.NewReader(string(res.Content)))
	if err != nil {
		return nil, fmt.Errorf("timeline %d history: %w", tli, err)
	}
	path := filepath.Join(s.cfg.SpoolDir, wal.HistoryName(tli))
	if err := writeFileSync(path, res.Content); err != nil {
		return nil, err
	}
	if _, err := s.cfg.Archive.Push(ctx, path); err != nil {
		return nil, fmt.Errorf("store %s: %w", wal.HistoryName(tli), err)
	}
	os.Remove(path)
	return entries, nil
}

// startPoint decides where streaming resumes: after the newest complete
// segment held (stored, or waiting in the spool), or, with nothing held,
// at the slot's position; always at a segment boundary.
func (s *Streamer) startPoint(ctx context.Context, server uint32, history []wal.HistoryEntry, slot slotState) (uint32, wal.LSN, error) {
	segSize := s.segSize.Load()
	held, err := s.heldSegments(ctx)
	if err != nil {
		return 0, 0, err
	}
	var tli uint32
	var end wal.LSN
	for _, h := range held { // highest timeline, then highest segment
		if h.tli > tli || h.tli == tli && wal.SegmentStart(h.segNo+1, segSize) > end {
			tli, end = h.tli, wal.SegmentStart(h.segNo+1, segSize)
		}
	}
	if tli == 0 {
		tli, end = slot.timeline, slot.restart
		if tli == 0 {
			tli = server
		}
		s.log.Info("nothing stored yet: starting at the slot's position", "lsn", end)
	}
	tli, start, err := resumePoint(tli, end, server, history, segSize)
	if err != nil {
		return 0, 0, err
	}
	if slotStart := wal.SegmentStart(wal.SegmentNo(slot.restart, segSize), segSize); slot.restart != 0 && start < slotStart {
		s.log.Warn("the repository ends before the slot's position: WAL in between must come from archive_command",
			"repository_end", start, "slot_restart_lsn", slot.restart)
		tli, start, err = resumePoint(max(slot.timeline, 1), slotStart, server, history, segSize)
		if err != nil {
			return 0, 0, err
		}
	}
	s.storedAtLeast(start)
	return tli, start, nil
}

type heldSegment struct {
	tli   uint32
	segNo uint64
}

// heldSegments lists the complete segments in the repository and in the
// spool.
func (s *Streamer) heldSegments(ctx context.Context) ([]heldSegment, error) {
	segSize := s.segSize.Load()
	var out []heldSegment
	add := func(name string) {
		f, err := wal.ParseFileName(name)
		if err != nil || f.Kind != wal.KindSegment {
			return
		}
		if no, err := f.SegmentNo(segSize); err == nil {
			out = append(out, heldSegment{f.Timeline, no})
		}
	}
	a := s.cfg.Archive
	prefix := a.Layout.WALPrefix()
	err := a.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		name := strings.TrimPrefix(oi.Key, prefix)
		// Only the seal suffix goes: "<segment>.partial.zst.age" must stay
		// a partial, not pass for a complete segment.
		if n, ok := strings.CutSuffix(name, seal.SuffixEncrypted); ok {
			add(n)
		} else if n, ok := strings.CutSuffix(name, seal.SuffixPlain); ok {
			add(n)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the repository: %w", err)
	}
	entries, err := os.ReadDir(s.cfg.SpoolDir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		add(e.Name())
	}
	return out, nil
}

// finishTimeline stores what was received of the ended timeline's last
// segment as its final partial, and the next timeline's history file.
func (s *Streamer) finishTimeline(ctx context.Context, conn *pgconn.PgConn, recv *wal.Receiver, end *wal.TimelineEnd) error {
	segSize := s.segSize.Load()
	if uint64(end.End)%uint64(segSize) != 0 {
		segNo := wal.SegmentNo(end.End, segSize)
		path := recv.SpoolPath(end.Timeline, segNo, true)
		if err := s.storePartialFile(ctx, path, end.Timeline, segNo, end.End); err != nil {
			return err
		}
		os.Remove(path)
	}
	s.mu.Lock()
	s.current = nil
	s.mu.Unlock()
	_, err := s.history(ctx, conn, end.Next)
	return err
}

func (s *Streamer) segmentReceived(tli uint32, segNo uint64) {
	s.pending.Add(int64(s.segSize.Load()))
	if m := s.cfg.Metrics; m != nil {
		m.SpoolBytes.Set(float64(s.pending.Load()))
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Streamer) progress(p wal.Progress) {
	now := time.Now()
	s.mu.Lock()
	cp := p
	s.current = &cp
	if n := len(s.serverTrail); n == 0 || s.serverTrail[n-1].lsn < p.ServerEnd {
		s.serverTrail = append(s.serverTrail, mark{p.ServerEnd, now})
		if len(s.serverTrail) > 4096 {
			s.serverTrail = append(s.serverTrail[:0], s.serverTrail[2048:]...)
		}
	}
	s.mu.Unlock()
	if m := s.cfg.Metrics; m != nil {
		m.ReceivedLSN.Set(float64(p.Received))
		m.ServerLSN.Set(float64(p.ServerEnd))
		s.updateLag()
	}
}

// storedAtLeast raises the stored position (never lowers it).
func (s *Streamer) storedAtLeast(l wal.LSN) {
	for {
		old := s.stored.Load()
		if uint64(l) <= old || s.stored.CompareAndSwap(old, uint64(l)) {
			break
		}
	}
	if m := s.cfg.Metrics; m != nil {
		m.StoredLSN.Set(float64(s.stored.Load()))
		m.FlushedLSN.Set(float64(s.stored.Load()))
		s.updateLag()
	}
}

func (s *Streamer) updateLag() {
	m := s.cfg.Metrics
	stored := wal.LSN(s.stored.Load())
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.serverTrail)
	if n == 0 {
		return
	}
	server := s.serverTrail[n-1].lsn
	m.LagBytes.Set(float64(max(server, stored) - stored))
	m.SlotRetained.Set(float64(max(server, stored) - stored))
	// The lag in time is how long ago the server was first past stored.
	i := sort.Search(n, func(i int) bool { return s.serverTrail[i].lsn > stored })
	if i == n {
		m.LagSeconds.Set(0)
		return
	}
	m.LagSeconds.Set(time.Since(s.serverTrail[i].at).Seconds())
}

func (s *Streamer) setConnected(on bool) {
	s.mu.Lock()
	if on {
		if s.connected.IsZero() {
			s.connected = time.Now()
		}
	} else {
		s.connected = time.Time{}
	}
	s.mu.Unlock()
	if m := s.cfg.Metrics; m != nil {
		v := 0.0
		if on {
			v = 1
		}
		m.Connected.Set(v)
	}
}

// Health reports whether the sidecar streams and stores: it is unhealthy
// when not connected, or when storing has failed for over a minute.
func (s *Streamer) Health() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.connected.IsZero():
		return false, "not connected to the server"
	case !s.failingFrom.IsZero() && time.Since(s.failingFrom) > time.Minute:
		return false, fmt.Sprintf("storing has failed since %s", s.failingFrom.UTC().Format(time.RFC3339))
	}
	return true, "ok"
}

func (s *Streamer) waitSpool(ctx context.Context) {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for s.pending.Load() > s.cfg.SpoolMax/2 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
