package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/pgward/pgward/catalog"
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
	fn, err := wal.ParseFileName(name)
	if err != nil {
		return err
	}
	// The object must be the file asked for, whatever the repository
	// says: its content is checked against the name and this cluster's
	// system (cluster.json, read beside the object).
	var (
		cinfo    catalog.ClusterInfo
		cinfoErr error
		wg       sync.WaitGroup
	)
	if fn.Kind == wal.KindSegment || fn.Kind == wal.KindPartial {
		wg.Go(func() { cinfo, cinfoErr = a.cachedClusterInfo(ctx) })
	}
	rc, info, err := a.open(ctx, name, opt.partial)
	if err != nil {
		wg.Wait()
		return err
	}
	defer rc.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dest), tempPrefix+name+"-*")
	if err != nil {
		wg.Wait()
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	want := seal.Expect{Key: info.Key, Kind: seal.KindWAL, Size: -1, Checksum: info.Metadata[MetaChecksum]}
	if v, err := strconv.ParseInt(info.Metadata[MetaSize], 10, 64); err == nil && v >= 0 {
		want.Size = v
	}
	var n int64
	var claims *seal.Claims
	if info.Size >= 0 && info.Size <= openInMemoryMax && want.Size <= openInMemoryMax {
		// A segment-sized object: read it whole in one buffer of its
		// size, and decompress its frames ahead of writing them.
		buf := bytes.NewBuffer(make([]byte, 0, info.Size+bytes.MinRead))
		if _, err := buf.ReadFrom(io.LimitReader(rc, openInMemoryMax+1)); err != nil {
			wg.Wait()
			return fmt.Errorf("fetch %s: read: %w", name, err)
		}
		// No WAL file is larger than a segment can be; what claims more
		// is refused before it fills the disk.
		n, claims, err = a.Opener.OpenBytesTo(tmp, buf.Bytes(), wal.MaxSegmentSize, want)
		if err != nil {
			wg.Wait()
			return fmt.Errorf("fetch %s: %w", name, err)
		}
	} else if n, claims, err = a.unsealTo(tmp, rc, want); err != nil {
		wg.Wait()
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	wg.Wait()
	if cinfoErr != nil {
		return fmt.Errorf("fetch %s: %w", name, cinfoErr)
	}
	if err := checkWALFile(tmp, name, fn, n, claims, cinfo); err != nil {
		return fmt.Errorf("fetch %s: %s is not this file: %w: %w", name, info.Key, seal.ErrCorrupt, err)
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

// unsealTo streams the verified plaintext of a sealed object into w and
// returns its length and, for a signed object, its claims.
func (a *Archive) unsealTo(w io.Writer, sealed io.Reader, want seal.Expect) (int64, *seal.Claims, error) {
	plain, err := a.Opener.NewReader(sealed, want)
	if err != nil {
		return 0, nil, err
	}
	defer plain.Close()
	n, err := io.Copy(w, plain)
	if err != nil {
		return n, nil, err
	}
	if c, ok := plain.Claims(); ok {
		return n, &c, nil
	}
	return n, nil, nil
}

// checkWALFile checks the n bytes of a fetched file against the name it
// was asked for (fn), this cluster and, when signed, its claims: a
// segment's long page header must give its timeline, address, system and
// size; a history file must parse and belong to its timeline.
func checkWALFile(f io.ReaderAt, name string, fn wal.FileName, n int64, claims *seal.Claims, cluster catalog.ClusterInfo) error {
	if claims != nil && claims.Timeline != 0 && claims.Timeline != fn.Timeline {
		return fmt.Errorf("it was signed as WAL of timeline %d", claims.Timeline)
	}
	switch fn.Kind {
	case wal.KindSegment, wal.KindPartial:
		hdr, err := wal.ReadSegmentHeader(io.NewSectionReader(f, 0, n))
		if err != nil {
			return err
		}
		if n != int64(hdr.SegmentSize) || hdr.SegmentSize != cluster.WALSegmentSize {
			return fmt.Errorf("%d bytes, but its header says segments are %d bytes and the cluster's are %d (truncated?)",
				n, hdr.SegmentSize, cluster.WALSegmentSize)
		}
		if err := hdr.CheckName(name); err != nil {
			return err
		}
		if hdr.SystemIdentifier != cluster.SystemIdentifier {
			return fmt.Errorf("it holds WAL of system %d, but this cluster is system %d", hdr.SystemIdentifier, cluster.SystemIdentifier)
		}
		if claims != nil && (claims.Address != uint64(hdr.PageAddr) || claims.SystemIdentifier != hdr.SystemIdentifier) {
			return errors.New("its header differs from what was signed")
		}
	case wal.KindHistory:
		if n > maxHistoryFile {
			return fmt.Errorf("a history file of %d bytes", n)
		}
		b := make([]byte, n)
		if _, err := f.ReadAt(b, 0); err != nil && err != io.EOF {
			return err
		}
		if _, err := wal.ValidateHistory(fn.Timeline, b); err != nil {
			return err
		}
	}
	return nil
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

// Verify reads the object stored under key for WAL file name (as ListWAL
// gives them) and checks it as a fetch would, without writing it
// anywhere. It reports whether the object carried a signature that held.
func (a *Archive) Verify(ctx context.Context, name, key string) (signed bool, err error) {
	fn, err := wal.ParseFileName(name)
	if err != nil {
		return false, err
	}
	var cinfo catalog.ClusterInfo
	if fn.Kind == wal.KindSegment || fn.Kind == wal.KindPartial {
		if cinfo, err = a.cachedClusterInfo(ctx); err != nil {
			return false, err
		}
	}
	rc, info, err := a.Store.Get(ctx, key)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	want := seal.Expect{Key: key, Kind: seal.KindWAL, Size: -1, Checksum: info.Metadata[MetaChecksum]}
	if v, err := strconv.ParseInt(info.Metadata[MetaSize], 10, 64); err == nil && v >= 0 {
		want.Size = v
	}
	head := &headWriter{max: maxHistoryFile}
	n, claims, err := a.unsealTo(head, rc, want)
	if err != nil {
		return false, err
	}
	if err := checkWALFile(bytes.NewReader(head.b), name, fn, n, claims, cinfo); err != nil {
		return false, fmt.Errorf("%w: it is not %s: %w", seal.ErrCorrupt, name, err)
	}
	return claims != nil, nil
}

// headWriter keeps the first max bytes written to it.
type headWriter struct {
	b   []byte
	max int
}

func (h *headWriter) Write(p []byte) (int, error) {
	if room := h.max - len(h.b); room > 0 {
		h.b = append(h.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
