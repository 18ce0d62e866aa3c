// Package inventory is what one cluster's repository holds: its finished
// base backups (and the ones whose backup.json was refused), every WAL
// object with where its WAL ends, the WAL end per timeline, the newest
// timeline's history, and the restorable windows these make. restore,
// probe and prune read it, so that they agree on what is there.
package inventory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/basebackup"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Object is one stored WAL object: a segment, a partial or a backup label
// file (segment.offset.backup); never a history file, which retention
// keeps.
type Object struct {
	Key  string
	Name string // the file name: 000000010000000000000003, or with .partial
	File wal.FileName
	// End is where its WAL ends: a segment's end, a partial's recorded end
	// (0 when it records none, and for a label file, which holds no WAL).
	End wal.LSN
	// SegmentEnd is the end of the segment it belongs to: what retention
	// counts, so a partial is kept at least as long as its segment.
	SegmentEnd wal.LSN
	Stored     time.Time
}

// WALEnd is the newest WAL the repository holds on one timeline.
type WALEnd struct {
	Timeline uint32
	End      wal.LSN   // end of the newest segment or partial
	Stored   time.Time // when it was stored: no commit after this is in it
}

// State is what the repository holds.
type State struct {
	Backups []catalog.BackupInfo // finished backups
	// Refused are the backups whose backup.json was refused, by id: never
	// restored from, and named when asked for.
	Refused map[string]error
	WAL     []WALEnd // per timeline
	// History of the newest timeline (from its history file); nil on
	// timeline 1.
	History []wal.HistoryEntry
	// Objects are the WAL objects, in key order.
	Objects     []Object
	SegmentSize uint32
}

// Newest is the end of the WAL on the newest timeline.
func (st State) Newest() WALEnd {
	var best WALEnd
	for _, e := range st.WAL {
		if e.Timeline > best.Timeline {
			best = e
		}
	}
	return best
}

// Load reads what the repository holds for a's cluster. It fails when the
// repository holds no WAL for it, and on a listing it cannot read: no
// plan is made from half a picture.
func Load(ctx context.Context, a *archive.Archive) (State, error) {
	var st State
	backups, skipped, err := basebackup.List(ctx, a.Store, a.Layout, a.Opener.Trust())
	if err != nil {
		return st, err
	}
	if len(skipped) > 0 && len(backups) == 0 {
		return st, skipped[0]
	}
	for _, err := range skipped {
		var r *basebackup.RefusedError
		if errors.As(err, &r) {
			if st.Refused == nil {
				st.Refused = map[string]error{}
			}
			st.Refused[r.ID] = r.Err
		}
	}
	for _, b := range backups {
		st.Backups = append(st.Backups, b.BackupInfo)
	}
	if st.Objects, st.SegmentSize, err = Objects(ctx, a); err != nil {
		return st, err
	}
	ends := map[uint32]*WALEnd{}
	for _, o := range st.Objects {
		if o.End == 0 {
			continue // a partial that records no end
		}
		e := ends[o.File.Timeline]
		if e == nil {
			e = &WALEnd{Timeline: o.File.Timeline}
			ends[o.File.Timeline] = e
		}
		e.End = max(e.End, o.End)
		if o.Stored.After(e.Stored) {
			e.Stored = o.Stored
		}
	}
	// Recovery follows the newest timeline with WAL: a history file alone
	// (a restored copy that promoted and archived nothing else) does not
	// lead anywhere.
	var newest uint32
	for _, e := range ends {
		st.WAL = append(st.WAL, *e)
		newest = max(newest, e.Timeline)
	}
	sort.Slice(st.WAL, func(i, j int) bool { return st.WAL[i].Timeline < st.WAL[j].Timeline })
	if newest > 1 {
		if st.History, err = history(ctx, a, newest); err != nil {
			return st, err
		}
	}
	if len(st.WAL) == 0 {
		return st, errors.New("the repository holds no WAL for this cluster")
	}
	return st, nil
}

// Objects lists the cluster's WAL objects with where their WAL ends: the
// one place that is computed. It also returns the cluster's segment size.
func Objects(ctx context.Context, a *archive.Archive) ([]Object, uint32, error) {
	info, err := a.ClusterInfo(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("repository cluster %q: %w", a.Layout.Cluster, err)
	}
	segSize := info.WALSegmentSize
	var out []Object
	err = a.ListWAL(ctx, func(f wal.FileName, name string, oi storage.ObjectInfo) error {
		if f.Kind != wal.KindSegment && f.Kind != wal.KindPartial && f.Kind != wal.KindBackup {
			return nil
		}
		no, err := f.SegmentNo(segSize)
		if err != nil {
			return nil // not of this cluster's segment size: never ours
		}
		o := Object{Key: oi.Key, Name: name, File: f, SegmentEnd: wal.SegmentStart(no+1, segSize), Stored: oi.ModTime}
		switch f.Kind {
		case wal.KindSegment:
			o.End = o.SegmentEnd
		case wal.KindPartial:
			o.End = partialEnd(ctx, a, oi)
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list WAL: %w", err)
	}
	return out, segSize, nil
}

// partialEnd is where a partial's WAL ends, from its metadata (read with a
// Stat when the listing does not carry it), or 0.
func partialEnd(ctx context.Context, a *archive.Archive, oi storage.ObjectInfo) wal.LSN {
	if end, err := wal.ParseLSN(oi.Metadata[archive.MetaEnd]); err == nil {
		return end
	}
	stat, err := a.Store.Stat(ctx, oi.Key)
	if err != nil {
		return 0
	}
	end, err := wal.ParseLSN(stat.Metadata[archive.MetaEnd])
	if err != nil {
		return 0
	}
	return end
}

// history fetches and parses timeline tli's history file.
func history(ctx context.Context, a *archive.Archive, tli uint32) ([]wal.HistoryEntry, error) {
	dir, err := os.MkdirTemp("", "pgward-history-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "history")
	if err := a.Fetch(ctx, wal.HistoryName(tli), path); err != nil {
		return nil, fmt.Errorf("timeline %d history: %w", tli, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, err := wal.ParseHistory(io.Reader(f))
	if err != nil {
		return nil, fmt.Errorf("timeline %d history: %w", tli, err)
	}
	return h, nil
}

// Window is what can be restored on one timeline: from the end of its
// oldest backup to its newest stored WAL.
type Window struct {
	Timeline      uint32    `json:"timeline"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	FromLSN       wal.LSN   `json:"-"`
	ToLSN         wal.LSN   `json:"-"`
	FromLSNText   string    `json:"from_lsn"`
	ToLSNText     string    `json:"to_lsn"`
	HasBaseBackup bool      `json:"has_base_backup"`
}

// Windows lists the restorable window of every timeline with WAL.
func Windows(st State) []Window {
	var out []Window
	for _, e := range st.WAL {
		w := Window{Timeline: e.Timeline, To: e.Stored, ToLSN: e.End}
		for _, b := range st.Backups {
			stop, _ := wal.ParseLSN(b.StopLSN)
			if b.StopTimeline != e.Timeline || stop > e.End {
				continue
			}
			if w.From.IsZero() || b.StopTime.Before(w.From) {
				w.From, w.FromLSN = b.StopTime, stop
			}
		}
		w.HasBaseBackup = !w.From.IsZero()
		w.FromLSNText, w.ToLSNText = w.FromLSN.String(), w.ToLSN.String()
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Timeline < out[j].Timeline })
	return out
}
