package archive

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// MissingWAL returns the first WAL segment of timeline tli between from
// and to (the WAL a backup needs) that the repository lacks, or "" when
// all are there. The last one may be the stream's partial, if it reaches
// to.
func (a *Archive) MissingWAL(ctx context.Context, tli uint32, from, to wal.LSN, segSize uint32) (string, error) {
	if to <= from {
		return "", nil
	}
	first, last := wal.SegmentNo(from, segSize), wal.SegmentNo(to-1, segSize)
	for no := first; no <= last; no++ {
		name := wal.SegmentName(tli, no, segSize)
		ok, err := a.hasAny(ctx, name)
		if err != nil {
			return "", err
		}
		if ok {
			continue
		}
		if no == last {
			if ok, err := a.partialReaches(ctx, name, to); err != nil || ok {
				return "", err
			}
		}
		return name, nil
	}
	return "", nil
}

func (a *Archive) hasAny(ctx context.Context, name string) (bool, error) {
	for _, s := range []string{seal.SuffixEncrypted, seal.SuffixPlain} {
		_, err := a.Store.Stat(ctx, a.Layout.WALKey(name, s))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return false, fmt.Errorf("check %s: %w", name, err)
		}
	}
	return false, nil
}

func (a *Archive) partialReaches(ctx context.Context, segment string, to wal.LSN) (bool, error) {
	for _, s := range []string{seal.SuffixEncrypted, seal.SuffixPlain} {
		info, err := a.Store.Stat(ctx, a.Layout.WALKey(segment+wal.PartialSuffix, s))
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("check %s.partial: %w", segment, err)
		}
		end, err := wal.ParseLSN(info.Metadata[MetaEnd])
		return err == nil && end >= to, nil
	}
	return false, nil
}

// ListWAL calls fn for every object under the cluster's WAL prefix with
// the WAL file name it holds (its seal suffix removed, exactly one: a
// "<segment>.partial.zst.age" stays a partial). Objects whose name is no
// WAL file name (temporary files of other tools) are skipped.
func (a *Archive) ListWAL(ctx context.Context, fn func(f wal.FileName, name string, oi storage.ObjectInfo) error) error {
	prefix := a.Layout.WALPrefix()
	return a.Store.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, prefix)
		for _, suffix := range []string{seal.SuffixEncrypted, seal.SuffixPlain} {
			if name, ok := strings.CutSuffix(rest, suffix); ok {
				f, err := wal.ParseFileName(name)
				if err != nil {
					return nil
				}
				return fn(f, name, oi)
			}
		}
		return nil
	})
}
