package filebackup

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// A pack's plaintext (sealed by its writer as one object) is its chunks,
// one after another, then a table of what they are and a fixed tail:
//
//	chunk 0 | chunk 1 | … | table | table length (8, big-endian) | "PGWPACK1"
//
// The table holds, per chunk in order, its id (32 bytes) and its length
// (uvarint); offsets follow from the order. A reader checks every chunk it
// takes against its id (the domain's HMAC), so a pack vouches for nothing
// it is not checked for.
const packMagic = "PGWPACK1"

// PackTarget is the plaintext size at which a writer starts a new pack.
const PackTarget = 16 << 20

// maxPackTable bounds a table read back: a 16 MiB pack of 512 KiB chunks
// has 32 entries; a forged length must not make the reader allocate.
const maxPackTable = 1 << 20

// PackEntry is one chunk of a pack.
type PackEntry struct {
	ID     string // hex
	Offset int64
	Length int64
}

// PackWriter writes a pack's plaintext to w as chunks are added.
type PackWriter struct {
	w       io.Writer
	entries []PackEntry
	size    int64
	table   bytes.Buffer
}

// NewPackWriter starts a pack on w (the sealing writer of its object).
func NewPackWriter(w io.Writer) *PackWriter { return &PackWriter{w: w} }

// Add appends a chunk with its id (Secret.ChunkID of data).
func (p *PackWriter) Add(id string, data []byte) error {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("pack: chunk id %q is not 32 bytes of hex", id)
	}
	if _, err := p.w.Write(data); err != nil {
		return err
	}
	p.entries = append(p.entries, PackEntry{ID: id, Offset: p.size, Length: int64(len(data))})
	p.size += int64(len(data))
	p.table.Write(raw)
	p.table.Write(binary.AppendUvarint(nil, uint64(len(data))))
	return nil
}

// Size is the plaintext written so far.
func (p *PackWriter) Size() int64 { return p.size }

// Finish writes the table and the tail, and returns the pack's entries.
// The caller closes w.
func (p *PackWriter) Finish() ([]PackEntry, error) {
	tail := binary.BigEndian.AppendUint64(nil, uint64(p.table.Len()))
	tail = append(tail, packMagic...)
	if _, err := p.w.Write(append(p.table.Bytes(), tail...)); err != nil {
		return nil, err
	}
	return p.entries, nil
}

// ErrBadPack is returned (wrapped) for a pack that is not what it claims.
var ErrBadPack = errors.New("not a valid pack")

// ParsePack reads a whole pack's plaintext: its entries, each chunk
// checked against its id with the domain's secret.
func ParsePack(plain []byte, s Secret) ([]PackEntry, error) {
	if len(plain) < 16 || string(plain[len(plain)-8:]) != packMagic {
		return nil, fmt.Errorf("%w: no pack tail", ErrBadPack)
	}
	tl := binary.BigEndian.Uint64(plain[len(plain)-16 : len(plain)-8])
	if tl > maxPackTable || tl > uint64(len(plain)-16) {
		return nil, fmt.Errorf("%w: a table of %d bytes in %d", ErrBadPack, tl, len(plain))
	}
	dataEnd := int64(len(plain)-16) - int64(tl)
	table := plain[dataEnd : len(plain)-16]
	var entries []PackEntry
	var off int64
	for len(table) > 0 {
		if len(table) < 33 {
			return nil, fmt.Errorf("%w: a truncated table entry", ErrBadPack)
		}
		id := hex.EncodeToString(table[:32])
		n, used := binary.Uvarint(table[32:])
		if used <= 0 || n > uint64(dataEnd-off) {
			return nil, fmt.Errorf("%w: entry %d's length runs past the data", ErrBadPack, len(entries))
		}
		table = table[32+used:]
		chunk := plain[off : off+int64(n)]
		if s.ChunkID(chunk) != id {
			return nil, fmt.Errorf("%w: chunk %d (at %d) is not the chunk %s its table names", ErrBadPack, len(entries), off, shortID(id))
		}
		entries = append(entries, PackEntry{ID: id, Offset: off, Length: int64(n)})
		off += int64(n)
	}
	if off != dataEnd {
		return nil, fmt.Errorf("%w: %d bytes of data the table does not name", ErrBadPack, dataEnd-off)
	}
	return entries, nil
}

// ReadChunks streams a pack's plaintext from r and calls fn with each
// chunk the index names (entries, ordered by offset), checked against its
// id; what lies between and after is read and dropped. buf holds one
// chunk; it is grown when a chunk is larger.
func ReadChunks(r io.Reader, entries []PackEntry, s Secret, buf []byte, fn func(e PackEntry, data []byte) error) error {
	var pos int64
	for _, e := range entries {
		if e.Offset < pos || e.Length < 0 {
			return fmt.Errorf("%w: entries out of order", ErrBadPack)
		}
		if _, err := io.CopyN(io.Discard, r, e.Offset-pos); err != nil {
			return fmt.Errorf("%w: %v", ErrBadPack, err)
		}
		if int64(cap(buf)) < e.Length {
			buf = make([]byte, e.Length)
		}
		data := buf[:e.Length]
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("%w: chunk %s: %v", ErrBadPack, shortID(e.ID), err)
		}
		if s.ChunkID(data) != e.ID {
			return fmt.Errorf("%w: the chunk at %d is not %s", ErrBadPack, e.Offset, shortID(e.ID))
		}
		if err := fn(e, data); err != nil {
			return err
		}
		pos = e.Offset + e.Length
	}
	return nil
}

// shortID is an id cut for messages (an index read back may hold anything).
func shortID(id string) string {
	if len(id) > 16 {
		return id[:16]
	}
	return fmt.Sprintf("%q", id)
}
