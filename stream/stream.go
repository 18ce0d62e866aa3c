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

	segSize   atomic.Uint32
	stored    atomic.Uint64 // wal.LSN: end of the WAL in the repository, without a gap, on the server's path
	slotFloor atomic.Uint64 // wal.LSN: the slot's restart_lsn when the session began
	pending   atomic.Int64  // bytes of complete segments in the spool (recounted by the uploader)

	mu          sync.Mutex
	server      uint32             // the server's timeline
	serverHist  []wal.HistoryEntry // and its history: the path WAL must follow
	current     *wal.Progress      // the segment being received, nil if none
	connected   time.Time          // zero when not streaming
	failingFrom time.Time          // first upload failure since the last success
	serverTrail []mark             // recent (server LSN, time) pairs, for lag in seconds
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
	segSize, err := wal.ServerSegmentSize(ctx, conn)
	if err != nil {
		return err
	}
	if err := s.cfg.Archive.EnsureCluster(ctx, sysid, wal.ServerMajor(conn), segSize); err != nil {
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
	s.mu.Lock()
	s.server, s.serverHist, s.current = uint32(ident.Timeline), history, nil
	s.mu.Unlock()
	s.slotFloor.Store(uint64(slot.restart))
	tli, start, err := s.startPoint(ctx, slot)
	if err != nil {
		return err
	}

	recv := &wal.Receiver{
		Dir: s.cfg.SpoolDir, SegmentSize: segSize, StatusInterval: s.cfg.StatusInterval, Logger: s.log,
		// Never report more than the repository holds; the slot's own
		// position is safe to repeat (it keeps what it keeps).
		Flushed:    func() wal.LSN { return wal.LSN(max(s.stored.Load(), s.slotFloor.Load())) },
		OnStatus:   s.statusSent,
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
		switch {
		case errors.As(err, &end):
			s.log.Info("timeline ended; following the next one", "timeline", end.Timeline, "lsn", end.End, "next_timeline", end.Next)
			// Anything stored past the switch point is not on the path.
			s.lowerStored(end.End)
			if err := s.finishTimeline(ctx, conn, recv, end); err != nil {
				return err
			}
			tli, start = end.Next, end.Start-wal.LSN(uint64(end.Start)%uint64(segSize))
		case walRemoved(err) && slot.restart > start:
			// The server no longer has the WAL after the repository's end:
			// it is lost unless archive_command stored it. Say so loudly and
			// go on from the slot, accepting the gap, rather than stall.
			tli2, start2, rerr := s.path(max(slot.timeline, 1), slot.restart)
			if rerr != nil {
				return &fatalError{rerr}
			}
			s.log.Error("WAL between the repository's end and the slot's position is gone from the server: the repository has a gap",
				"from", start, "to", start2)
			if m := s.cfg.Metrics; m != nil {
				m.Gaps.Inc()
			}
			tli, start = tli2, start2
			s.setStored(start)
		default:
			return err
		}
	}
}

// walRemoved reports the server's "requested WAL segment … has already
// been removed".
func walRemoved(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "has already been removed")
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
// at the slot's position; always at a segment boundary, along the
// server's timeline history. It also sets the stored position from the
// repository alone: spooled WAL counts once it is stored.
func (s *Streamer) startPoint(ctx context.Context, slot slotState) (uint32, wal.LSN, error) {
	repo, spool, err := s.heldSegments(ctx)
	if err != nil {
		return 0, 0, err
	}
	tli, end := s.newest(append(repo, spool...))
	first := tli == 0
	if first {
		tli, end = max(slot.timeline, 1), slot.restart
		s.log.Info("nothing stored yet: starting at the slot's position", "lsn", end)
	}
	tli, start, err := s.path(tli, end)
	if err != nil {
		return 0, 0, &fatalError{err}
	}
	switch repoTLI, repoEnd := s.newest(repo); {
	case first:
		// WAL before the slot's position was never ours to keep: the
		// stored chain begins where streaming does.
		s.setStored(start)
	case repoTLI == 0:
		// Only the spool holds WAL (the repository was unreachable when
		// it was received): it counts once stored, from its first segment.
		s.setStored(s.oldest(spool))
	default:
		_, stored, err := s.path(repoTLI, repoEnd)
		if err != nil {
			return 0, 0, &fatalError{err}
		}
		s.setStored(stored)
	}
	return tli, start, nil
}

// path is resumePoint on the current server's history.
func (s *Streamer) path(tli uint32, end wal.LSN) (uint32, wal.LSN, error) {
	s.mu.Lock()
	server, hist := s.server, s.serverHist
	s.mu.Unlock()
	return resumePoint(tli, end, server, hist, s.segSize.Load())
}

// oldest is the start of the oldest segment in held.
func (s *Streamer) oldest(held []heldSegment) wal.LSN {
	segSize := s.segSize.Load()
	var start wal.LSN
	for i, h := range held {
		if l := wal.SegmentStart(h.segNo, segSize); i == 0 || l < start {
			start = l
		}
	}
	return start
}

// newest is the end of the newest segment in held: highest timeline,
// then highest segment.
func (s *Streamer) newest(held []heldSegment) (uint32, wal.LSN) {
	segSize := s.segSize.Load()
	var tli uint32
	var end wal.LSN
	for _, h := range held {
		if h.tli > tli || h.tli == tli && wal.SegmentStart(h.segNo+1, segSize) > end {
			tli, end = h.tli, wal.SegmentStart(h.segNo+1, segSize)
		}
	}
	return tli, end
}

type heldSegment struct {
	tli   uint32
	segNo uint64
}

// heldSegments lists the complete segments in the repository and in the
// spool. Other spool files (the partial of an interrupted session, history
// files) are removed: streaming restarts at a segment boundary anyway.
func (s *Streamer) heldSegments(ctx context.Context) (repo, spool []heldSegment, err error) {
	segSize := s.segSize.Load()
	parse := func(name string) (heldSegment, bool) {
		f, err := wal.ParseFileName(name)
		if err != nil || f.Kind != wal.KindSegment {
			return heldSegment{}, false
		}
		no, err := f.SegmentNo(segSize)
		return heldSegment{f.Timeline, no}, err == nil
	}
	err = s.cfg.Archive.ListWAL(ctx, func(_ wal.FileName, name string, _ storage.ObjectInfo) error {
		if h, ok := parse(name); ok {
			repo = append(repo, h)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list the repository: %w", err)
	}
	entries, err := os.ReadDir(s.cfg.SpoolDir)
	if err != nil {
		return nil, nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		if h, ok := parse(e.Name()); ok {
			spool = append(spool, h)
		} else if err := os.Remove(filepath.Join(s.cfg.SpoolDir, e.Name())); err != nil {
			return nil, nil, fmt.Errorf("spool: %w", err)
		}
	}
	return repo, spool, nil
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

// advanceStored extends the stored position to end when the piece
// [from, end) of timeline tli, now in the repository, continues it
// without a gap on the server's path. It reports whether it did.
func (s *Streamer) advanceStored(tli uint32, from, end wal.LSN) bool {
	if tli != s.timelineAt(end-1) {
		return false // past a switch point: not on the path
	}
	for {
		old := s.stored.Load()
		if uint64(from) > old {
			return false // an earlier piece is not stored yet
		}
		if uint64(end) <= old || s.stored.CompareAndSwap(old, uint64(end)) {
			break
		}
	}
	s.storedChanged()
	return true
}

// setStored sets the stored position, which may lower it.
func (s *Streamer) setStored(l wal.LSN) {
	s.stored.Store(uint64(l))
	s.storedChanged()
}

// lowerStored lowers the stored position to l if it is beyond.
func (s *Streamer) lowerStored(l wal.LSN) {
	for {
		old := s.stored.Load()
		if old <= uint64(l) || s.stored.CompareAndSwap(old, uint64(l)) {
			break
		}
	}
	s.storedChanged()
}

func (s *Streamer) storedChanged() {
	if m := s.cfg.Metrics; m != nil {
		m.StoredLSN.Set(float64(s.stored.Load()))
		s.updateLag()
	}
}

// timelineAt is the timeline holding WAL position l on the server's path.
func (s *Streamer) timelineAt(l wal.LSN) uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.serverHist {
		if l < e.SwitchPoint {
			return e.Parent
		}
	}
	return s.server
}

func (s *Streamer) statusSent(_, flush wal.LSN) {
	if m := s.cfg.Metrics; m != nil {
		m.FlushedLSN.Set(float64(flush))
		s.mu.Lock()
		var server wal.LSN
		if n := len(s.serverTrail); n > 0 {
			server = s.serverTrail[n-1].lsn
		}
		s.mu.Unlock()
		// For a physical slot, restart_lsn is the flush position last sent.
		m.SlotRetained.Set(float64(max(server, flush) - flush))
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
