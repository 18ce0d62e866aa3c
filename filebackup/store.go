package filebackup

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// The kinds of sealed file-backup objects.
const (
	KindPack  = "file-pack"
	KindIndex = "file-index"
)

// ValidateDomain checks a key domain's name, which becomes a key segment:
// the rules of a cluster's name.
func ValidateDomain(name string) error {
	if err := catalog.ValidateClusterName(name); err != nil {
		return fmt.Errorf("key domain: %w", err)
	}
	return nil
}

// Prefix is where a domain's objects live.
func Prefix(domain string) string { return "files/" + domain + "/" }

// IndexEntry says where a chunk is stored.
type IndexEntry struct {
	ID     string `json:"id"`
	Pack   string `json:"pack"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// Store writes chunks into a domain's packs, each chunk once: those known
// (stored before, from the writer's own record, or earlier in this run)
// are skipped. Flush ends the open pack and stores the run's index.
type Store struct {
	Backend storage.Backend
	Domain  string
	// Sealer seals packs (to the domain's recipients); IndexSealer the
	// index, to them and to the secret's Reader, so the writer can read
	// back what it stored.
	Sealer      *seal.Sealer
	IndexSealer *seal.Sealer
	KeyID       string // the secret's KeyID: the index's folder
	// Known are the chunk ids the domain holds already.
	Known map[string]bool

	cur     *catalog.ObjectWriter
	curKey  string
	curID   string
	pack    *PackWriter
	index   []IndexEntry
	Written int64 // plaintext bytes stored into packs by this run
	Stored  int64 // sealed bytes of the packs this run stored
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// PackKey is where pack id of domain is stored.
func (s *Store) PackKey(id string) string {
	return Prefix(s.Domain) + "packs/" + id[:2] + "/" + id + s.Sealer.Suffix()
}

// Add stores a chunk unless the domain holds it.
func (s *Store) Add(ctx context.Context, id string, data []byte) error {
	if s.Known == nil {
		s.Known = map[string]bool{}
	}
	if s.Known[id] {
		return nil
	}
	if s.pack == nil {
		if err := ValidateDomain(s.Domain); err != nil {
			return err
		}
		s.curID = newID()
		s.curKey = s.PackKey(s.curID)
		w, err := catalog.NewObjectWriter(ctx, s.Backend.Create, s.curKey, s.Sealer, seal.Claims{Kind: KindPack}, nil)
		if err != nil {
			return err
		}
		s.cur, s.pack = w, NewPackWriter(w)
	}
	if err := s.pack.Add(id, data); err != nil {
		s.cur.Abort(err)
		s.pack = nil
		return fmt.Errorf("pack %s: %w", s.curKey, err)
	}
	s.Known[id] = true
	s.Written += int64(len(data))
	if s.pack.Size() >= PackTarget {
		return s.closePack()
	}
	return nil
}

// ClosePack stores the open pack, if any, so that another domain's store
// may open one: a backup keeps one pack upload in flight, whatever the
// number of domains.
func (s *Store) ClosePack() error {
	if s.pack == nil {
		return nil
	}
	return s.closePack()
}

func (s *Store) closePack() error {
	entries, err := s.pack.Finish()
	if err == nil {
		err = s.cur.Close()
		s.Stored += s.cur.StoredBytes()
	} else {
		s.cur.Abort(err)
	}
	s.pack = nil
	if err != nil {
		return fmt.Errorf("pack %s: %w", s.curKey, err)
	}
	for _, e := range entries {
		s.index = append(s.index, IndexEntry{ID: e.ID, Pack: s.curID, Offset: e.Offset, Length: e.Length})
	}
	return nil
}

// Flush stores the open pack and then the run's index (what it added).
// Until the index is stored, a pack is unreferenced: a crash leaves it
// for prune, never a chunk the index names but no pack holds.
func (s *Store) Flush(ctx context.Context) (indexKey string, err error) {
	if s.pack != nil {
		if err := s.closePack(); err != nil {
			return "", err
		}
	}
	if len(s.index) == 0 {
		return "", nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, e := range s.index {
		if err := enc.Encode(e); err != nil {
			return "", err
		}
	}
	if s.KeyID == "" {
		return "", errors.New("store: no key id for the index")
	}
	sealer := s.IndexSealer
	if sealer == nil {
		sealer = s.Sealer
	}
	indexKey = IndexKey(s.Domain, s.KeyID, newID(), sealer.Suffix())
	w, err := catalog.NewObjectWriter(ctx, s.Backend.Create, indexKey, sealer, seal.Claims{Kind: KindIndex}, nil)
	if err != nil {
		return "", err
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		w.Abort(err)
		return "", err
	}
	if err := w.Close(); err != nil {
		return "", err
	}
	s.index = nil
	return indexKey, nil
}

// IndexKey is where index id of domain's secret keyID is stored.
func IndexKey(domain, keyID, id, suffix string) string {
	return Prefix(domain) + "index/" + keyID + "/" + id + suffix
}

// maxIndex bounds an index object read back.
const maxIndex = 256 << 20

// ReadIndexes reads every index of domain: where each chunk is. An entry
// that names no valid place is refused; the chunk itself is checked when
// it is read (ReadChunks).
//
// keyID "" reads the indexes of every secret of the domain; else only
// those of that secret (all a backing-up host can open).
func ReadIndexes(ctx context.Context, b storage.Backend, o *seal.Opener, domain, keyID string) (map[string]IndexEntry, error) {
	out := map[string]IndexEntry{}
	err := EachIndex(ctx, b, o, domain, keyID, func(_ string, e IndexEntry) error {
		out[e.ID] = e
		return nil
	})
	return out, err
}

// IndexKeys lists the index objects of domain (of secret keyID, or all).
func IndexKeys(ctx context.Context, b storage.Backend, domain, keyID string) ([]string, error) {
	if err := ValidateDomain(domain); err != nil {
		return nil, err
	}
	prefix := Prefix(domain) + "index/"
	if keyID != "" {
		prefix += keyID + "/"
	}
	var keys []string
	err := b.List(ctx, prefix, func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil })
	return keys, err
}

// EachIndex calls fn with every entry of every index of domain (of secret
// keyID, or all), each checked to name a valid place, with the index's key.
func EachIndex(ctx context.Context, b storage.Backend, o *seal.Opener, domain, keyID string, fn func(indexKey string, e IndexEntry) error) error {
	keys, err := IndexKeys(ctx, b, domain, keyID)
	if err != nil {
		return err
	}
	for _, key := range keys {
		if err := eachEntry(ctx, b, o, key, fn); err != nil {
			return err
		}
	}
	return nil
}

func eachEntry(ctx context.Context, b storage.Backend, o *seal.Opener, key string, fn func(string, IndexEntry) error) error {
	rc, _, err := b.Get(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	r, err := o.NewReader(rc, seal.Expect{Key: key, Kind: KindIndex, Size: -1})
	if err != nil {
		return err
	}
	defer r.Close()
	dec := json.NewDecoder(io.LimitReader(r, maxIndex))
	for {
		var e IndexEntry
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		if _, err := hex.DecodeString(e.ID + e.Pack); err != nil || len(e.ID) != 64 || len(e.Pack) != 32 || e.Offset < 0 || e.Length < 0 || e.Length > 64<<20 {
			return fmt.Errorf("%s: an entry that names no valid place", key)
		}
		if err := fn(key, e); err != nil {
			return err
		}
	}
	if err := r.Close(); err != nil { // the seal's checks end here
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// IndexKeyID is the secret an index object's entries were made with:
// its folder.
func IndexKeyID(key string) string {
	_, rest, _ := strings.Cut(key, "/index/")
	id, _, _ := strings.Cut(rest, "/")
	return id
}
