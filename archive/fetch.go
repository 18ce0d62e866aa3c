package archive

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Fetch writes WAL file name from the repository to dest. The file appears
// at dest complete and verified, or not at all: it is written to a
// temporary file in dest's directory, checked against the checksum stored
// with the object, and renamed into place. It returns an error wrapping
// ErrNotFound when the repository does not hold the file. A segment stored
// only as the stream's newest partial is served as that partial: recovery
// then reaches the last second the stream stored.
func (a *Archive) Fetch(ctx context.Context, name, dest string) error {
	return a.fetch(ctx, name, dest, fetchOptions{partial: true})
}

// fetchOptions say how a fetch differs for the prefetch spool.
type fetchOptions struct {
	// partial serves the stream's partial for a segment not stored
	// whole. Only the fetch PostgreSQL waits on may: a spooled partial
	// would be served later, after the whole segment has been stored.
	partial bool
	// durable syncs the file before it is renamed into place: the spool
	// must survive a crash of the host, while PostgreSQL itself makes
	// what restore_command wrote durable.
	durable bool
}

func (a *Archive) fetch(ctx context.Context, name, dest string, opt fetchOptions) error {
	if _, err := wal.ParseFileName(name); err != nil {
		return err
	}
	rc, info, err := a.open(ctx, name, opt.partial)
	if err != nil {
		return err
	}
	defer rc.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dest), tempPrefix+name+"-*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var n int64
	var sum string
	plainSize := info.Size // a sealed object is never larger than its plaintext by much
	if v, err := strconv.ParseInt(info.Metadata[MetaSize], 10, 64); err == nil {
		plainSize = v
	}
	if info.Size >= 0 && info.Size <= openInMemoryMax && plainSize <= openInMemoryMax {
		// A segment-sized object: read it whole and decompress its frames
		// in parallel, then write the file in one go.
		sealed, err := io.ReadAll(io.LimitReader(rc, openInMemoryMax+1))
		if err != nil {
			return fmt.Errorf("fetch %s: read: %w", name, err)
		}
		plain, err := a.Opener.OpenBytes(sealed, openInMemoryMax)
		if errors.Is(err, seal.ErrTooLarge) {
			plain, err = nil, nil
			if sum, n, err = a.unsealTo(tmp, bytes.NewReader(sealed)); err != nil {
				return fmt.Errorf("fetch %s: %w", name, err)
			}
		} else if err != nil {
			return fmt.Errorf("fetch %s: %w", name, err)
		} else {
			sum, n = checksum(plain), int64(len(plain))
			if _, err := tmp.Write(plain); err != nil {
				return fmt.Errorf("fetch %s: %w", name, err)
			}
		}
	} else if sum, n, err = a.unsealTo(tmp, rc); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if want := info.Metadata[MetaSize]; want != "" && want != strconv.FormatInt(n, 10) {
		return fmt.Errorf("fetch %s: %w: unsealed %d bytes, the object records %s", name, seal.ErrCorrupt, n, want)
	}
	if want := info.Metadata[MetaChecksum]; want != "" && sum != want {
		return fmt.Errorf("fetch %s: %w: the unsealed file's checksum is %s, the object records %s", name, seal.ErrCorrupt, short(sum), short(want))
	} else if want == "" {
		// The checksum lives in metadata, which copies of a file
		// repository (cp, rsync without -X, tar) lose. A segment can still
		// be checked against its own page header: its name and size.
		a.logger().Warn("object has no recorded checksum; checking what it can (was the repository copied without its extended attributes?)", "key", info.Key)
		if err := checkSegmentFile(tmp, name, n); err != nil {
			return fmt.Errorf("fetch %s: %w: %w", name, seal.ErrCorrupt, err)
		}
	}
	if opt.durable {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	tmp = nil
	return nil
}

// openInMemoryMax is the largest object Fetch unseals in memory (a sealed
// 16 MiB segment is 1–16 MiB); larger ones are streamed.
const openInMemoryMax = 16 << 20

// unsealTo streams the plaintext of a sealed object into w and returns
// its checksum and length.
func (a *Archive) unsealTo(w io.Writer, sealed io.Reader) (string, int64, error) {
	plain, err := a.Opener.NewReader(sealed)
	if err != nil {
		return "", 0, err
	}
	defer plain.Close()
	h := xxh3.New128()
	n, err := io.Copy(io.MultiWriter(w, h), plain)
	if err != nil {
		return "", n, err
	}
	b := h.Sum128().Bytes()
	return hex.EncodeToString(b[:]), n, nil
}

// RemoveStaleTemps deletes temporary files that a killed Fetch left in
// dir (PostgreSQL's pg_wal) more than olderThan ago.
func RemoveStaleTemps(dir string, olderThan time.Duration) {
	matches, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && time.Since(fi.ModTime()) > olderThan {
			os.Remove(m)
		}
	}
}

// open finds the object for name under either suffix, trying first the
// one this host can decrypt, and, when partial allows, the stream's
// partial of a segment not stored whole.
func (a *Archive) open(ctx context.Context, name string, partial bool) (io.ReadCloser, storage.ObjectInfo, error) {
	suffixes := []string{seal.SuffixEncrypted, seal.SuffixPlain}
	if !a.Opener.CanDecrypt() {
		suffixes[0], suffixes[1] = suffixes[1], suffixes[0]
	}
	for _, s := range suffixes {
		rc, info, err := a.Store.Get(ctx, a.Layout.WALKey(name, s))
		if err == nil {
			return rc, info, nil
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	// A segment not stored whole may exist as the stream's newest partial:
	// serving it lets recovery reach the last second the stream stored.
	if f, err := wal.ParseFileName(name); partial && err == nil && f.Kind == wal.KindSegment {
		for _, s := range suffixes {
			rc, info, err := a.Store.Get(ctx, a.Layout.WALKey(name+wal.PartialSuffix, s))
			if err == nil {
				if info.Metadata[MetaSource] == SourceStream {
					a.logger().Info("serving the stream's partial segment", "segment", name, "lsn", info.Metadata[MetaEnd])
					return rc, info, nil
				}
				rc.Close()
			} else if !errors.Is(err, storage.ErrNotExist) {
				return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, err)
			}
		}
	}
	// "Not found" ends recovery, so it must mean the end of this cluster's
	// archive, not a wrong bucket, prefix or --cluster: those have no
	// cluster.json.
	if _, err := a.readClusterInfo(ctx); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, ErrNoCluster)
		}
		return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, err)
	}
	return nil, storage.ObjectInfo{}, fmt.Errorf("%s: %w", name, ErrNotFound)
}

// checkSegmentFile checks a fetched segment (not a partial, history or
// backup file) of n bytes against its long page header.
func checkSegmentFile(f *os.File, name string, n int64) error {
	fn, err := wal.ParseFileName(name)
	if err != nil || fn.Kind != wal.KindSegment {
		return nil
	}
	hdr, err := wal.ReadSegmentHeader(io.NewSectionReader(f, 0, n))
	if err != nil {
		return err
	}
	if n != int64(hdr.SegmentSize) {
		return fmt.Errorf("%d bytes, but its header says segments are %d (truncated?)", n, hdr.SegmentSize)
	}
	return hdr.CheckName(name)
}
