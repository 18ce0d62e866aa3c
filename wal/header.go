package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// LongHeaderSize is the size of XLogLongPageHeaderData, which starts every
// segment: the 24-byte page header followed by the system identifier,
// segment size and block size.
const LongHeaderSize = 40

const xlpLongHeader = 0x0002

// pageMagic maps XLOG_PAGE_MAGIC to the PostgreSQL major version that
// writes it (src/include/access/xlog_internal.h).
var pageMagic = map[uint16]int{
	0xD097: 10, 0xD098: 11, 0xD101: 12, 0xD106: 13, 0xD10D: 14,
	0xD110: 15, 0xD113: 16, 0xD116: 17, 0xD118: 18,
}

// SegmentHeader is what the first page of a segment says about it.
type SegmentHeader struct {
	Magic            uint16
	PGVersion        int // 0 when the magic is unknown
	Timeline         uint32
	PageAddr         LSN
	SystemIdentifier uint64
	SegmentSize      uint32
	BlockSize        uint32
}

// ErrNotSegment is returned (wrapped) when data does not start with a
// WAL segment's long page header.
var ErrNotSegment = errors.New("not a WAL segment")

// ReadSegmentHeader reads and checks the long page header at the start of
// a segment. PostgreSQL writes it in the host's byte order; pgward supports
// little-endian hosts, the only ones it is built for.
func ReadSegmentHeader(r io.Reader) (SegmentHeader, error) {
	var b [LongHeaderSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return SegmentHeader{}, fmt.Errorf("%w: shorter than a page header", ErrNotSegment)
		}
		return SegmentHeader{}, err
	}
	return ParseSegmentHeader(b[:])
}

// ParseSegmentHeader parses the first LongHeaderSize bytes of a segment.
func ParseSegmentHeader(b []byte) (SegmentHeader, error) {
	if len(b) < LongHeaderSize {
		return SegmentHeader{}, fmt.Errorf("%w: shorter than a page header", ErrNotSegment)
	}
	le := binary.LittleEndian
	h := SegmentHeader{
		Magic:            le.Uint16(b[0:2]),
		Timeline:         le.Uint32(b[4:8]),
		PageAddr:         LSN(le.Uint64(b[8:16])),
		SystemIdentifier: le.Uint64(b[24:32]),
		SegmentSize:      le.Uint32(b[32:36]),
		BlockSize:        le.Uint32(b[36:40]),
	}
	info := le.Uint16(b[2:4])
	h.PGVersion = pageMagic[h.Magic]
	if info&xlpLongHeader == 0 {
		return h, fmt.Errorf("%w: first page has no long header (magic %04X, info %04X)", ErrNotSegment, h.Magic, info)
	}
	if !ValidSegmentSize(h.SegmentSize) {
		return h, fmt.Errorf("%w: header gives segment size %d", ErrNotSegment, h.SegmentSize)
	}
	if h.BlockSize == 0 || h.BlockSize&(h.BlockSize-1) != 0 || h.BlockSize > 1<<16 {
		return h, fmt.Errorf("%w: header gives block size %d", ErrNotSegment, h.BlockSize)
	}
	if h.Magic>>12 != 0xD { // every XLOG_PAGE_MAGIC so far is 0xDxxx
		return h, fmt.Errorf("%w: unknown page magic %04X", ErrNotSegment, h.Magic)
	}
	if uint64(h.PageAddr)%uint64(h.SegmentSize) != 0 {
		return h, fmt.Errorf("%w: first page address %s is not at a segment boundary", ErrNotSegment, h.PageAddr)
	}
	if h.Timeline == 0 { // timelines start at 1 (found by FuzzParseSegmentHeader)
		return h, fmt.Errorf("%w: header gives timeline 0", ErrNotSegment)
	}
	return h, nil
}

// CheckName verifies that a segment file called name holds this header's
// segment: the same segment number, and a timeline no later than the
// name's (the first segment of a new timeline begins with pages copied from
// the old one, which carry the old timeline in their headers).
func (h SegmentHeader) CheckName(name string) error {
	f, err := ParseFileName(name)
	if err != nil {
		return err
	}
	no, err := f.SegmentNo(h.SegmentSize)
	if err != nil {
		return err
	}
	// The first page of a timeline's first segment may still carry the
	// parent's timeline (PostgreSQL copies it at the switch), never a later one.
	if h.Timeline == 0 || h.Timeline > f.Timeline {
		return fmt.Errorf("file %s holds WAL of timeline %d: the name does not match the content", name, h.Timeline)
	}
	if got := SegmentNo(h.PageAddr, h.SegmentSize); got != no {
		return fmt.Errorf("file %s holds WAL from LSN %s (segment %s): the name does not match the content",
			name, h.PageAddr, SegmentName(f.Timeline, got, h.SegmentSize))
	}
	return nil
}
