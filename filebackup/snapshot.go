package filebackup

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// KindSnapshot is the kind of a sealed snapshot object.
const KindSnapshot = "file-snapshot"

// SnapshotFormat is the version of the snapshot format.
const SnapshotFormat = 1

// SnapshotHeader is a snapshot's first line; its nodes follow, one per
// line, in walk order.
type SnapshotHeader struct {
	Format int       `json:"format"`
	ID     string    `json:"id"`
	Set    string    `json:"set"`
	Domain string    `json:"domain"`
	Time   time.Time `json:"time"`
	Host   string    `json:"host,omitempty"`
	Paths  []Name    `json:"paths"`
	Parent string    `json:"parent,omitempty"` // the snapshot unchanged files were taken from
	// KeyID names the domain secret the chunk ids were made with.
	KeyID string `json:"key_id"`
}

// ValidateSet checks a set's name (a key segment).
func ValidateSet(name string) error {
	if err := catalog.ValidateClusterName(name); err != nil {
		return fmt.Errorf("set: %w", err)
	}
	return nil
}

// SnapshotKey is where snapshot id of set is stored.
func SnapshotKey(domain, set, id, suffix string) string {
	return Prefix(domain) + "snapshots/" + set + "/" + id + ".json" + suffix
}

// SnapshotID is a snapshot's id: the time it began, UTC, to the second,
// which also orders a set's snapshots.
func SnapshotID(t time.Time) string { return t.UTC().Format("20060102T150405Z") }

// SnapshotWriter streams a snapshot into its sealed object: memory holds
// one node at a time, whatever the tree.
type SnapshotWriter struct {
	w   *catalog.ObjectWriter
	buf *bufio.Writer
	enc *json.Encoder
	key string
	n   int
}

// NewSnapshotWriter starts the snapshot h describes.
func NewSnapshotWriter(ctx context.Context, b storage.Backend, sealer *seal.Sealer, h SnapshotHeader) (*SnapshotWriter, error) {
	if err := ValidateDomain(h.Domain); err != nil {
		return nil, err
	}
	if err := ValidateSet(h.Set); err != nil {
		return nil, err
	}
	h.Format = SnapshotFormat
	if h.ID == "" {
		h.ID = SnapshotID(h.Time)
	}
	key := SnapshotKey(h.Domain, h.Set, h.ID, sealer.Suffix())
	w, err := catalog.NewObjectWriter(ctx, b.Create, key, sealer, seal.Claims{Kind: KindSnapshot}, nil)
	if err != nil {
		return nil, err
	}
	sw := &SnapshotWriter{w: w, key: key}
	sw.buf = bufio.NewWriterSize(w, 256<<10)
	sw.enc = json.NewEncoder(sw.buf)
	if err := sw.enc.Encode(h); err != nil {
		w.Abort(err)
		return nil, err
	}
	return sw, nil
}

// Add writes one node.
func (s *SnapshotWriter) Add(n Node) error {
	if err := n.Validate(); err != nil {
		return err
	}
	s.n++
	return s.enc.Encode(n)
}

// copyNodes appends node lines written (and validated) before, as a
// backup's spool holds them.
func (s *SnapshotWriter) copyNodes(r io.Reader) error {
	_, err := io.Copy(s.buf, r)
	return err
}

// Close stores the snapshot; it exists only once Close returns nil.
func (s *SnapshotWriter) Close() (key string, err error) {
	if err := s.buf.Flush(); err != nil {
		s.w.Abort(err)
		return "", err
	}
	if err := s.w.Close(); err != nil {
		return "", err
	}
	return s.key, nil
}

// Abort gives the snapshot up: nothing is stored.
func (s *SnapshotWriter) Abort(err error) { s.w.Abort(err) }

// maxNodeLine bounds one line read back: a node of a 10 TiB file lists
// about ten million chunk ids.
const maxNodeLine = 1 << 30

// ReadSnapshot reads the snapshot at key: its header, then each node,
// each checked (Validate) before fn sees it. The sealed object's checks
// (size, checksum, signature) end the read: a snapshot cut short or
// altered fails after its last node.
func ReadSnapshot(ctx context.Context, b storage.Backend, o *seal.Opener, key string, fn func(h SnapshotHeader, n Node) error) (SnapshotHeader, error) {
	var h SnapshotHeader
	rc, _, err := b.Get(ctx, key)
	if err != nil {
		return h, err
	}
	defer rc.Close()
	r, err := o.NewReader(rc, seal.Expect{Key: key, Kind: KindSnapshot, Size: -1})
	if err != nil {
		return h, err
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxNodeLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return h, fmt.Errorf("%s: %w", key, err)
		}
		return h, fmt.Errorf("%s: an empty snapshot", key)
	}
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Format != SnapshotFormat {
		return h, fmt.Errorf("%s: not a snapshot of format %d", key, SnapshotFormat)
	}
	// A snapshot moved under another set, domain or time is refused: its
	// header says where it was written.
	rest, ok := strings.CutPrefix(key, SnapshotKey(h.Domain, h.Set, h.ID, ""))
	if ValidateDomain(h.Domain) != nil || ValidateSet(h.Set) != nil || !ok || (rest != seal.SuffixPlain && rest != seal.SuffixEncrypted) {
		return h, fmt.Errorf("%s: its header names another place (%s/%s/%s)", key, h.Domain, h.Set, h.ID)
	}
	for sc.Scan() {
		var n Node
		if err := json.Unmarshal(sc.Bytes(), &n); err != nil {
			return h, fmt.Errorf("%s: a node that does not parse: %w", key, err)
		}
		if err := n.Validate(); err != nil {
			return h, fmt.Errorf("%s: %w", key, err)
		}
		if err := fn(h, n); err != nil {
			return h, err
		}
	}
	if err := sc.Err(); err != nil {
		return h, fmt.Errorf("%s: %w", key, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil { // the seal's end checks
		return h, fmt.Errorf("%s: %w", key, err)
	}
	return h, nil
}

// ListSnapshots returns the keys of a set's snapshots, oldest first.
func ListSnapshots(ctx context.Context, b storage.Backend, domain, set string) ([]string, error) {
	if err := ValidateDomain(domain); err != nil {
		return nil, err
	}
	if err := ValidateSet(set); err != nil {
		return nil, err
	}
	var keys []string
	prefix := Prefix(domain) + "snapshots/" + set + "/"
	err := b.List(ctx, prefix, func(oi storage.ObjectInfo) error {
		rest := strings.TrimPrefix(oi.Key, prefix)
		if !strings.Contains(rest, "/") && strings.Contains(rest, ".json") {
			keys = append(keys, oi.Key)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(keys) // ids are times
	return keys, nil
}
