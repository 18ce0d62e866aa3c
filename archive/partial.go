package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// MetaSource says who stored an object. The stream sidecar marks the
// partial segments it keeps replacing as it receives more WAL, so that
// they, and only they, may be replaced.
const (
	MetaSource   = "source"
	SourceStream = "stream"
	// MetaEnd is the LSN up to which a stream partial holds WAL.
	MetaEnd = "end-lsn"
)

// ErrNotStreamPartial is returned (wrapped) by PutStreamPartial when the
// repository holds a partial segment that the stream did not store (one
// PostgreSQL archived at promotion): it is never replaced.
var ErrNotStreamPartial = errors.New("a partial segment archived by PostgreSQL is already stored under this name")

// PutStreamPartial stores data, the first bytes of segment (a 24-digit
// name) up to end followed by zeros, as <segment>.partial, replacing the
// stream's previous partial of that segment.
func (a *Archive) PutStreamPartial(ctx context.Context, segment string, data []byte, end wal.LSN) error {
	name := segment + wal.PartialSuffix
	key := a.Layout.WALKey(name, a.Sealer.Suffix())
	for _, k := range []string{key, a.Layout.WALKey(name, otherSuffix(a.Sealer.Suffix()))} {
		info, err := a.Store.Stat(ctx, k)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store %s: %w", name, err)
		}
		if info.Metadata[MetaSource] != SourceStream {
			return fmt.Errorf("store %s: %w", name, ErrNotStreamPartial)
		}
		// Partials only grow: an older, shorter one (a late upload, a
		// restart) never replaces a longer one.
		if stored, err := wal.ParseLSN(info.Metadata[MetaEnd]); err == nil && stored >= end {
			return nil
		}
	}
	fn, err := wal.ParseFileName(segment)
	if err != nil {
		return err
	}
	hdr, err := wal.ReadSegmentHeader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	var sealed bytes.Buffer
	claims, err := a.Sealer.SealBytes(&sealed, data, seal.Claims{Key: key, Kind: seal.KindWAL,
		Timeline: fn.Timeline, Address: uint64(hdr.PageAddr), SystemIdentifier: hdr.SystemIdentifier})
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	meta := catalog.WithRecipients(map[string]string{
		MetaChecksum: claims.Checksum, MetaSize: strconv.Itoa(len(data)),
		MetaSource: SourceStream, MetaEnd: end.String(),
	}, a.Sealer)
	if err := a.Store.Put(ctx, key, bytes.NewReader(sealed.Bytes()), int64(sealed.Len()), meta); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	return nil
}

// DeleteStreamPartial removes the stream's partial of segment, once the
// complete segment is stored. A partial PostgreSQL archived is kept.
func (a *Archive) DeleteStreamPartial(ctx context.Context, segment string) error {
	name := segment + wal.PartialSuffix
	for _, k := range []string{a.Layout.WALKey(name, a.Sealer.Suffix()), a.Layout.WALKey(name, otherSuffix(a.Sealer.Suffix()))} {
		info, err := a.Store.Stat(ctx, k)
		if errors.Is(err, storage.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
		if info.Metadata[MetaSource] == SourceStream {
			if err := a.Store.Delete(ctx, k); err != nil {
				return fmt.Errorf("delete %s: %w", name, err)
			}
		}
	}
	return nil
}
