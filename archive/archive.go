package archive

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zeebo/xxh3"
	"golang.org/x/sys/unix"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Metadata keys stored with every WAL object.
const (
	// MetaChecksum is the hex XXH3-128 of the unsealed file. It lets a
	// push compare content without the identity (hosts that archive hold
	// only the public key) and lets a fetch verify what it wrote. It guards
	// against accidents, not attackers (anyone with the public key can
	// seal an object): XXH3 costs a tenth of SHA-256 per segment.
	MetaChecksum = "xxh3-128"
	// MetaSize is the unsealed size in bytes.
	MetaSize = "size"
)

// sealInMemoryMax is the largest file Push seals into memory before
// storing; larger ones (big wal_segment_size) are streamed.
const sealInMemoryMax = 16 << 20

// ErrNotFound is returned (wrapped) by Fetch when the repository cluster
// exists but does not hold the file. It wraps storage.ErrNotExist.
var ErrNotFound = fmt.Errorf("WAL file not in the repository: %w", storage.ErrNotExist)

// ErrNoCluster is returned (wrapped) by Fetch when the repository has no
// such cluster at all: a wrong --repo, bucket, prefix or --cluster, which
// must not pass for the end of the archive.
var ErrNoCluster = errors.New("the repository holds no cluster.json for this --cluster: check --repo and --cluster (nothing was ever archived there)")

// ErrConflict is returned (wrapped) by Push when the repository already
// holds different content under the same name.
var ErrConflict = errors.New("the repository already holds different content under this name")

// Archive pushes and fetches the WAL of one repository cluster.
type Archive struct {
	Store  storage.Backend
	Layout catalog.Layout
	// Sealer seals pushed files; required by Push.
	Sealer *seal.Sealer
	// Opener unseals fetched files; required by Fetch.
	Opener *seal.Opener
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now defaults to time.Now.
	Now func() time.Time
	// SystemIdentifier, when not 0, is the system identifier of the server
	// whose files are pushed (from its pg_control). Push then refuses
	// files, history files included, that belong to another system.
	SystemIdentifier uint64

	clusterMu   sync.Mutex
	clusterInfo *catalog.ClusterInfo // read once by fetches
}

func (a *Archive) logger() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

func (a *Archive) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// PushResult says what Push did.
type PushResult int

// The outcomes of a successful Push.
const (
	Stored        PushResult = iota + 1 // the file was stored
	AlreadyStored                       // identical content was already there
)

// Push seals the WAL file at path and stores it under its own name.
//
// Segments (and .partial files) are checked first: the name must match the
// page header, and the system identifier must match the cluster's
// cluster.json, which the first segment pushed creates. Pushing content
// that is already stored succeeds without writing; different content under
// the same name fails with ErrConflict and leaves the stored object alone.
func (a *Archive) Push(ctx context.Context, path string) (PushResult, error) {
	return a.push(ctx, path, true)
}

// push is Push; inMemory lets it map and seal a segment whole (fastest),
// while files pushed ahead stream, so that several at once stay within
// the memory bound.
func (a *Archive) push(ctx context.Context, path string, inMemory bool) (PushResult, error) {
	name := filepath.Base(path)
	fn, err := wal.ParseFileName(name)
	if err != nil {
		return 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open WAL file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("%s is not a regular file", path)
	}
	size := fi.Size()

	var hdr wal.SegmentHeader
	isSegment := fn.Kind == wal.KindSegment || fn.Kind == wal.KindPartial
	if isSegment {
		if hdr, err = wal.ReadSegmentHeader(io.NewSectionReader(f, 0, size)); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
		if err := hdr.CheckName(name); err != nil {
			return 0, err
		}
		if fn.Kind == wal.KindSegment && size != int64(hdr.SegmentSize) {
			what := "incomplete"
			if size > int64(hdr.SegmentSize) {
				what = "longer than a segment: something appended to it"
			}
			return 0, fmt.Errorf("%s is %d bytes, but its header gives a segment size of %d: the file is %s", path, size, hdr.SegmentSize, what)
		}
	}
	claims := seal.Claims{Kind: seal.KindWAL}
	if isSegment {
		claims.Timeline, claims.Address, claims.SystemIdentifier = fn.Timeline, uint64(hdr.PageAddr), hdr.SystemIdentifier
	} else if fn.Kind == wal.KindHistory {
		claims.Timeline = fn.Timeline
		if err := validateHistoryFile(f, fn.Timeline, size); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	} else if fn.Kind == wal.KindBackup {
		claims.Timeline = fn.Timeline
		if err := validateBackupFile(f, name, size); err != nil {
			return 0, fmt.Errorf("%s: %w", path, err)
		}
	}

	// Hash the file, look for an existing object, read cluster.json and,
	// for files small enough to hold sealed in memory (a 16 MiB segment
	// seals to about 2), seal it: all at the same time, so neither the
	// hashing nor the storage round trips add to the compression time.
	var (
		sum                string
		sumErr             error
		existing, other    storage.ObjectInfo
		existErr, otherErr error
		info               catalog.ClusterInfo
		infoDoc            clusterDoc
		infoErr            error
		sealed             *bytes.Buffer
		sealErr            error
		wg                 sync.WaitGroup
	)
	key := a.Layout.WALKey(name, a.Sealer.Suffix())
	otherKey := a.Layout.WALKey(name, otherSuffix(a.Sealer.Suffix()))
	claims.Key = key
	wg.Go(func() { existing, existErr = a.Store.Stat(ctx, key) })
	wg.Go(func() { other, otherErr = a.Store.Stat(ctx, otherKey) })
	wg.Go(func() {
		infoDoc, infoErr = a.readClusterDoc(ctx)
		info = infoDoc.info
	})
	// A file an earlier call pushed ahead (PushAhead) is most likely
	// stored: hash it, compare with the stored copy, and seal only if
	// that copy is not there after all.
	pushedAhead := takePushedMark(path)
	if size > 0 && size <= sealInMemoryMax && !pushedAhead && inMemory {
		// Map the file (already in the page cache: PostgreSQL just wrote
		// it) and hash and seal it side by side, without copying it.
		data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
		if err != nil {
			wg.Wait()
			return 0, fmt.Errorf("read %s: %w", path, err)
		}
		defer unix.Munmap(data)
		wg.Go(func() {
			// SealBytes hashes the file beside compressing it.
			sealed = bytes.NewBuffer(make([]byte, 0, size/4+4096))
			var c seal.Claims
			if c, sealErr = a.Sealer.SealBytes(sealed, data, claims); sealErr == nil {
				sum = c.Checksum
			}
		})
	} else {
		wg.Go(func() { sum, sumErr = checksumFile(f, size) })
	}
	wg.Wait()
	if sumErr != nil {
		return 0, fmt.Errorf("read %s: %w", path, sumErr)
	}
	if sealErr != nil {
		return 0, fmt.Errorf("push %s: %w", name, sealErr)
	}
	log := a.logger().With("segment", name)

	// The stream's provisional partial gives way to the one PostgreSQL
	// archives at promotion, which ends at the switch: under the same key
	// it is replaced in one write (Put), so the repository is never
	// without it; under the other suffix it is removed once ours is stored.
	replace, staleOther := false, ""
	for _, o := range []struct {
		info storage.ObjectInfo
		err  error
	}{{existing, existErr}, {other, otherErr}} {
		if errors.Is(o.err, storage.ErrNotExist) {
			continue
		}
		if o.err != nil {
			return 0, fmt.Errorf("push %s: check for an existing copy: %w", name, o.err)
		}
		if fn.Kind == wal.KindPartial && o.info.Metadata[MetaSource] == SourceStream && o.info.Metadata[MetaChecksum] != sum {
			if o.info.Key == key {
				replace = true
			} else {
				staleOther = o.info.Key
			}
			continue
		}
		return a.matchStored(o.info, name, sum)
	}
	store := a.Store.Create
	if replace {
		store = a.Store.Put
	}

	// The file must come from the system this repository cluster belongs
	// to: segments say so in their page header; for history and backup
	// files, PGDATA's pg_control does (when the caller found it).
	sysid := a.SystemIdentifier
	if isSegment {
		if sysid != 0 && sysid != hdr.SystemIdentifier {
			return 0, fmt.Errorf("push %s: the segment's system identifier %d differs from this server's (%d, from pg_control): "+
				"it comes from another PostgreSQL system", name, hdr.SystemIdentifier, sysid)
		}
		sysid = hdr.SystemIdentifier
	}
	switch {
	case errors.Is(infoErr, storage.ErrNotExist):
		if isSegment {
			info = catalog.ClusterInfo{
				Format: catalog.ClusterInfoFormat, SystemIdentifier: hdr.SystemIdentifier,
				PGVersion: hdr.PGVersion, WALSegmentSize: hdr.SegmentSize, CreatedAt: a.now().UTC(),
			}
			if err := a.createClusterInfo(ctx, info); err != nil {
				return 0, fmt.Errorf("push %s: %w", name, err)
			}
		}
	case infoErr != nil:
		return 0, infoErr
	case isSegment:
		if err := info.Check(a.Layout.Cluster, hdr.SystemIdentifier, hdr.SegmentSize); err != nil {
			return 0, fmt.Errorf("push %s: %w", name, err)
		}
	case sysid != 0:
		if err := info.Check(a.Layout.Cluster, sysid, info.WALSegmentSize); err != nil {
			return 0, fmt.Errorf("push %s: %w", name, err)
		}
	}
	if infoErr == nil && (isSegment || sysid != 0) {
		if err := a.resignClusterInfo(ctx, infoDoc); err != nil {
			return 0, fmt.Errorf("push %s: %w", name, err)
		}
	}

	start := time.Now()
	meta := catalog.WithRecipients(map[string]string{MetaChecksum: sum, MetaSize: strconv.FormatInt(size, 10)}, a.Sealer)
	if sealed != nil {
		err = store(ctx, key, bytes.NewReader(sealed.Bytes()), int64(sealed.Len()), meta)
	} else {
		// Too big to hold (or pushed ahead, yet not found stored after
		// all): stream it, sealing as the backend reads.
		var obj *catalog.ObjectWriter
		if obj, err = catalog.NewObjectWriter(ctx, store, key, a.Sealer, claims, meta); err == nil {
			if _, err = io.Copy(obj, io.NewSectionReader(f, 0, size)); err != nil {
				obj.Abort(err)
			} else {
				err = obj.Close()
			}
		}
	}
	if errors.Is(err, storage.ErrExist) {
		// Another pusher stored it since the check above: compare with it.
		o, serr := a.Store.Stat(ctx, key)
		if serr != nil {
			return 0, fmt.Errorf("push %s: %w", name, serr)
		}
		return a.matchStored(o, name, sum)
	}
	if err != nil {
		return 0, fmt.Errorf("push %s: %w", name, err)
	}
	if staleOther != "" {
		if err := a.Store.Delete(ctx, staleOther); err != nil {
			return 0, fmt.Errorf("push %s: remove the stream's partial: %w", name, err)
		}
	}
	log.Debug("segment archived", "key", key, "bytes", size, "duration", time.Since(start))
	return Stored, nil
}

// matchStored decides a push of content with checksum sum when the object
// o already holds that name: identical content is success, anything else
// a conflict. Nothing is ever overwritten.
func (a *Archive) matchStored(o storage.ObjectInfo, name, sum string) (PushResult, error) {
	switch stored := o.Metadata[MetaChecksum]; {
	case stored == sum:
		a.logger().Debug("already archived with identical content", "segment", name, "key", o.Key)
		return AlreadyStored, nil
	case stored == "":
		return 0, fmt.Errorf("push %s: %s exists without a recorded checksum, so pgward cannot tell whether it matches; "+
			"compare by hand and remove one of them: %w", name, o.Key, ErrConflict)
	default:
		return 0, fmt.Errorf("push %s: %s holds content with checksum %s, this file has %s; nothing was overwritten. "+
			"Two servers may be archiving into the same --cluster: %w", name, o.Key, short(stored), short(sum), ErrConflict)
	}
}

func checksum(data []byte) string {
	b := xxh3.Hash128(data).Bytes()
	return hex.EncodeToString(b[:])
}

func checksumFile(f *os.File, size int64) (string, error) {
	h := xxh3.New128()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, size)); err != nil {
		return "", err
	}
	b := h.Sum128().Bytes()
	return hex.EncodeToString(b[:]), nil
}

func otherSuffix(s string) string {
	if s == seal.SuffixEncrypted {
		return seal.SuffixPlain
	}
	return seal.SuffixEncrypted
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}

// ClusterInfo reads the cluster's cluster.json. It returns an error
// wrapping storage.ErrNotExist when nothing was pushed yet.
func (a *Archive) ClusterInfo(ctx context.Context) (catalog.ClusterInfo, error) {
	return a.readClusterInfo(ctx)
}

// cachedClusterInfo is ClusterInfo read once per Archive: a prefetcher
// checks many segments against it.
func (a *Archive) cachedClusterInfo(ctx context.Context) (catalog.ClusterInfo, error) {
	a.clusterMu.Lock()
	defer a.clusterMu.Unlock()
	if a.clusterInfo != nil {
		return *a.clusterInfo, nil
	}
	info, err := a.readClusterInfo(ctx)
	if errors.Is(err, storage.ErrNotExist) {
		return info, fmt.Errorf("%w", ErrNoCluster)
	}
	if err != nil {
		return info, err
	}
	a.clusterInfo = &info
	return info, nil
}

func (a *Archive) readClusterInfo(ctx context.Context) (catalog.ClusterInfo, error) {
	d, err := a.readClusterDoc(ctx)
	return d.info, err
}

// clusterDoc is cluster.json as read: what it says, and who signed it.
type clusterDoc struct {
	info   catalog.ClusterInfo
	doc    []byte // without its signature line
	signer seal.PublicKey
	signed bool
}

func (a *Archive) readClusterDoc(ctx context.Context) (clusterDoc, error) {
	key := a.Layout.ClusterInfoKey()
	rc, _, err := a.Store.Get(ctx, key)
	if err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return clusterDoc{}, err
		}
		return clusterDoc{}, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	data, err := seal.ReadAll(rc, 1<<20)
	if err != nil {
		return clusterDoc{}, fmt.Errorf("read %s: %w", key, err)
	}
	var d clusterDoc
	d.signer, d.signed = seal.DocumentSigner(data)
	// A host that only writes trusts no signer: it reads cluster.json to
	// refuse WAL of another system, not to restore from it.
	trust := &seal.Trust{}
	if a.Opener != nil {
		trust = a.Opener.Trust()
	}
	if d.doc, err = trust.VerifyDocument(data, key); err != nil {
		return clusterDoc{}, err
	}
	if err := json.NewDecoder(bytes.NewReader(d.doc)).Decode(&d.info); err != nil {
		return clusterDoc{}, fmt.Errorf("read %s: %w", key, err)
	}
	return d, nil
}

// resignClusterInfo signs cluster.json anew with this writer's key when
// another key (or none) signed it: after a rotation, readers that trust
// only the new key must still read it. The caller has checked that it
// describes the system this writer archives.
func (a *Archive) resignClusterInfo(ctx context.Context, d clusterDoc) error {
	key := a.Sealer.Signer()
	if key == nil || (d.signed && d.signer == key.Public()) {
		return nil
	}
	ckey := a.Layout.ClusterInfoKey()
	b, err := key.SignDocument(d.doc, ckey)
	if err != nil {
		return err
	}
	if err := a.Store.Put(ctx, ckey, bytes.NewReader(b), int64(len(b)), nil); err != nil {
		return fmt.Errorf("sign %s anew: %w", ckey, err)
	}
	a.logger().Info("cluster.json signed with this writer's key", "cluster", a.Layout.Cluster, "signer", key.Public().String())
	return nil
}

// createClusterInfo writes cluster.json unless it exists; when another
// pusher wrote it first, info must agree with it.
func (a *Archive) createClusterInfo(ctx context.Context, info catalog.ClusterInfo) error {
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	key := a.Layout.ClusterInfoKey()
	if b, err = a.Sealer.Signer().SignDocument(b, key); err != nil {
		return err
	}
	err = a.Store.Create(ctx, key, bytes.NewReader(b), int64(len(b)), nil)
	if errors.Is(err, storage.ErrExist) {
		stored, rerr := a.readClusterInfo(ctx)
		if rerr != nil {
			return rerr
		}
		return stored.Check(a.Layout.Cluster, info.SystemIdentifier, info.WALSegmentSize)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	a.logger().Info("repository cluster created", "cluster", a.Layout.Cluster,
		"system_identifier", strconv.FormatUint(info.SystemIdentifier, 10), "pg_version", info.PGVersion)
	return nil
}

// EnsureCluster checks that the repository cluster belongs to the system
// sysid, creating its cluster.json when nothing was stored yet.
func (a *Archive) EnsureCluster(ctx context.Context, sysid uint64, pgVersion int, segSize uint32) error {
	d, err := a.readClusterDoc(ctx)
	if errors.Is(err, storage.ErrNotExist) {
		return a.createClusterInfo(ctx, catalog.ClusterInfo{
			Format: catalog.ClusterInfoFormat, SystemIdentifier: sysid,
			PGVersion: pgVersion, WALSegmentSize: segSize, CreatedAt: a.now().UTC(),
		})
	}
	if err != nil {
		return err
	}
	if err := d.info.Check(a.Layout.Cluster, sysid, segSize); err != nil {
		return err
	}
	return a.resignClusterInfo(ctx, d)
}

// maxHistoryFile bounds a history file pgward stores or reads back.
const maxHistoryFile = 1 << 20

// validateHistoryFile refuses a history file PostgreSQL could not read:
// stored, it would end every later recovery, and no push could mend it.
func validateHistoryFile(f *os.File, tli uint32, size int64) error {
	if size > maxHistoryFile {
		return fmt.Errorf("a history file of %d bytes is not one PostgreSQL wrote (at most %d)", size, maxHistoryFile)
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil {
		return err
	}
	if _, err := wal.ValidateHistory(tli, b); err != nil {
		return fmt.Errorf("not storing it: %w", err)
	}
	return nil
}

// validateBackupFile refuses a backup history file that is not one
// PostgreSQL wrote for this name: its START WAL LOCATION must name the
// segment the file is named after.
func validateBackupFile(f *os.File, name string, size int64) error {
	if size > 64<<10 {
		return fmt.Errorf("a backup history file of %d bytes is not one PostgreSQL wrote", size)
	}
	b, err := io.ReadAll(io.NewSectionReader(f, 0, size))
	if err != nil {
		return err
	}
	segment := name[:24]
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "START WAL LOCATION: ")
		if !ok {
			continue
		}
		lsn, file, _ := strings.Cut(rest, " (file ")
		if _, err := wal.ParseLSN(lsn); err != nil || file != segment+")" {
			return fmt.Errorf("not storing it: its START WAL LOCATION line %q does not name segment %s", line, segment)
		}
		return nil
	}
	return errors.New("not storing it: no START WAL LOCATION line, so it is not a backup history file PostgreSQL wrote")
}
