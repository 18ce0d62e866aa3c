package basebackup

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// DefaultPartSize is the plaintext bytes of a tar archive per stored
// object.
const DefaultPartSize = 1 << 30

// partsInFlight bounds the parts uploading at once: each may hold an S3
// part buffer, so memory stays flat.
const partsInFlight = 2

// storeSink stores the backup stream: each archive cut into parts sealed
// and uploaded one by one (a compressed archive in one part), the
// manifest as one object.
type storeSink struct {
	ctx      context.Context
	store    storage.Backend
	layout   catalog.Layout
	sealer   *seal.Sealer
	id       string
	partSize int64
	progress func(done, total int64)
	// compressed: the server sends its archives compressed with zstd, as
	// <name>.zst; they are stored as they come, and their plaintext size
	// is what the server last reported having read.
	compressed bool
	serverDone int64
	limiter    *rate.Limiter // nil: no pacing

	start       wal.LSN
	tli         uint32
	total       int64
	archives    []catalog.BackupArchive
	manifest    *catalog.BackupPart
	cur         *part
	curArchive  string // "" while in the manifest
	inManifest  bool
	inflight    []*part
	dataBytes   int64
	storedBytes int64
}

// part is one object being written.
type part struct {
	info catalog.BackupPart
	obj  *catalog.ObjectWriter
	// where to record the result: archives[archive].Parts[index], or the
	// manifest when archive is -1 (indexes, as the slices grow)
	archive, index int
}

func (s *storeSink) Begin(start wal.LSN, tli uint32, tbs []Tablespace) error {
	s.start, s.tli = start, tli
	for _, t := range tbs {
		s.total += t.Size
	}
	return nil
}

func (s *storeSink) Archive(name, location string) error {
	if err := s.closePart(); err != nil {
		return err
	}
	compression := ""
	if s.compressed {
		var ok bool
		if name, ok = cutSuffix(name, ".zst"); !ok {
			return fmt.Errorf("BASE_BACKUP: archive %q is not zstd-compressed, as asked", name)
		}
		compression = catalog.CompressionZstd
	}
	if !validArchiveName(name) {
		return fmt.Errorf("BASE_BACKUP: unexpected archive name %q", name)
	}
	s.archives = append(s.archives, catalog.BackupArchive{Name: name, Tablespace: location, Compression: compression})
	s.curArchive, s.inManifest = name, false
	return nil
}

func (s *storeSink) Manifest() error {
	if err := s.closePart(); err != nil {
		return err
	}
	s.manifest = &catalog.BackupPart{}
	s.inManifest = true
	return nil
}

func (s *storeSink) Progress(done int64) {
	s.serverDone = done
	if s.progress != nil {
		s.progress(done, s.total)
	}
}

func (s *storeSink) Write(p []byte) error {
	if !s.inManifest && len(s.archives) == 0 {
		return errors.New("BASE_BACKUP: data before any archive")
	}
	if err := s.pace(len(p)); err != nil {
		return s.fail(err)
	}
	for len(p) > 0 {
		if s.cur == nil {
			if err := s.openPart(); err != nil {
				return err
			}
		}
		// A compressed archive is one zstd frame: it is stored whole, as
		// a part cut from it could not be read alone.
		cut := !s.inManifest && !s.compressed
		n := len(p)
		if cut {
			n = int(min(int64(n), s.partSize-s.cur.info.Bytes))
		}
		if _, err := s.cur.obj.Write(p[:n]); err != nil {
			return s.fail(err)
		}
		s.cur.info.Bytes += int64(n)
		if !s.inManifest {
			s.dataBytes += int64(n)
		}
		p = p[n:]
		if cut && s.cur.info.Bytes == s.partSize {
			if err := s.closePart(); err != nil {
				return err
			}
		}
	}
	return nil
}

// pace waits until n more bytes may be stored.
func (s *storeSink) pace(n int) error {
	if s.limiter == nil {
		return nil
	}
	for n > 0 {
		step := min(n, max(s.limiter.Burst(), 1))
		if err := s.limiter.WaitN(s.ctx, step); err != nil {
			return fmt.Errorf("pace the backup: %w", err)
		}
		n -= step
	}
	return nil
}

func (s *storeSink) openPart() error {
	var key string
	ai, pi := -1, 0
	kind := seal.KindBackupPart
	if s.inManifest {
		key = s.layout.BackupManifestKey(s.id, s.sealer.Suffix())
		kind = seal.KindBackupManifest
	} else {
		ai = len(s.archives) - 1
		a := &s.archives[ai]
		pi = len(a.Parts)
		key = s.layout.BackupPartKey(s.id, a.Name, pi, s.sealer.Suffix())
		if a.Compression != "" {
			kind = seal.KindBackupStream
		}
		a.Parts = append(a.Parts, catalog.BackupPart{Key: key})
	}
	// Created, never replaced: two backups given one id would collide
	// here, and one of them fails.
	obj, err := catalog.NewObjectWriter(s.ctx, s.store.Create, key, s.sealer, seal.Claims{Kind: kind}, nil)
	if err != nil {
		return err
	}
	s.cur = &part{info: catalog.BackupPart{Key: key}, obj: obj, archive: ai, index: pi}
	return nil
}

// closePart finishes the current part and waits for the oldest upload
// when too many are in flight.
func (s *storeSink) closePart() error {
	p := s.cur
	if p == nil {
		return nil
	}
	s.cur = nil
	if err := p.obj.Finish(); err != nil {
		p.obj.Wait()
		return err
	}
	s.inflight = append(s.inflight, p)
	if len(s.inflight) >= partsInFlight {
		return s.waitOldest()
	}
	return nil
}

func (s *storeSink) waitOldest() error {
	p := s.inflight[0]
	s.inflight = s.inflight[1:]
	if err := p.obj.Wait(); err != nil {
		return err
	}
	p.info.Checksum = p.obj.Claims().Checksum
	p.info.StoredBytes = p.obj.StoredBytes()
	if p.archive < 0 {
		*s.manifest = p.info
	} else {
		s.archives[p.archive].Parts[p.index] = p.info
	}
	s.storedBytes += p.info.StoredBytes
	return nil
}

// finish closes the last part and waits for every upload.
func (s *storeSink) finish() error {
	err := s.closePart()
	if s.compressed {
		s.dataBytes = s.serverDone
	}
	for len(s.inflight) > 0 {
		if werr := s.waitOldest(); err == nil {
			err = werr
		}
	}
	return err
}

// fail abandons the current part after a write error.
func (s *storeSink) fail(err error) error {
	if p := s.cur; p != nil {
		s.cur = nil
		p.obj.Abort(err)
	}
	return err
}

// validArchiveName accepts what PostgreSQL names its archives: base.tar
// and <tablespace oid>.tar. Anything else could escape the backup's
// prefix in the repository.
func validArchiveName(name string) bool {
	stem, ok := cutSuffix(name, ".tar")
	if !ok || stem == "" {
		return false
	}
	if stem == "base" {
		return true
	}
	for _, c := range stem {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}
