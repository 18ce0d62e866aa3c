package wal

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// LSN is a position in the write-ahead log.
type LSN uint64

// String formats the LSN as PostgreSQL does: two hex halves, "16/B374D848".
func (l LSN) String() string {
	return fmt.Sprintf("%X/%X", uint32(l>>32), uint32(l))
}

// ParseLSN parses PostgreSQL's "X/X" notation.
func ParseLSN(s string) (LSN, error) {
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, fmt.Errorf("invalid LSN %q: want two hex numbers like 16/B374D848", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid LSN %q: want two hex numbers like 16/B374D848", s)
	}
	return LSN(h<<32 | l), nil
}

// Segment sizes PostgreSQL accepts (initdb --wal-segsize): powers of two
// from 1 MiB to 1 GiB.
const (
	MinSegmentSize     = 1 << 20
	MaxSegmentSize     = 1 << 30
	DefaultSegmentSize = 16 << 20
)

// ValidSegmentSize reports whether size is a wal_segment_size PostgreSQL
// can use.
func ValidSegmentSize(size uint32) bool {
	return size >= MinSegmentSize && size <= MaxSegmentSize && size&(size-1) == 0
}

func segmentsPerID(segSize uint32) uint64 { return 0x100000000 / uint64(segSize) }

// SegmentNo is the number of the segment holding lsn.
func SegmentNo(lsn LSN, segSize uint32) uint64 { return uint64(lsn) / uint64(segSize) }

// SegmentStart is the LSN at which segment segNo begins.
func SegmentStart(segNo uint64, segSize uint32) LSN { return LSN(segNo * uint64(segSize)) }

// SegmentName is the 24-hex-digit file name of segment segNo on timeline tli.
func SegmentName(tli uint32, segNo uint64, segSize uint32) string {
	per := segmentsPerID(segSize)
	return fmt.Sprintf("%08X%08X%08X", tli, segNo/per, segNo%per)
}

// HistoryName is the file name of timeline tli's history file.
func HistoryName(tli uint32) string { return fmt.Sprintf("%08X.history", tli) }

// Kind says what a WAL file name denotes.
type Kind int

// The kinds of file found in pg_wal and in an archive.
const (
	KindSegment Kind = iota + 1 // 000000010000000000000001
	KindPartial                 // 000000010000000000000001.partial
	KindHistory                 // 00000002.history
	KindBackup                  // 000000010000000000000001.00000028.backup
)

func (k Kind) String() string {
	switch k {
	case KindSegment:
		return "segment"
	case KindPartial:
		return "partial segment"
	case KindHistory:
		return "history file"
	case KindBackup:
		return "backup history file"
	}
	return "unknown"
}

// FileName is a parsed WAL file name.
type FileName struct {
	Kind     Kind
	Timeline uint32
	// LogID and Seg are the second and third 8-hex groups of a segment
	// name; turning them into a segment number needs the segment size
	// (see SegmentNo on FileName).
	LogID, Seg uint32
	// Offset is the backup start offset within the segment (KindBackup).
	Offset uint32
}

// ErrNotWALName is returned (wrapped) for names that are not WAL files.
var ErrNotWALName = errors.New("not a WAL file name")

// ParseFileName classifies a WAL file name (no directory part).
func ParseFileName(name string) (FileName, error) {
	bad := func() (FileName, error) {
		return FileName{}, fmt.Errorf("%q: %w (want a 24-hex-digit segment name, TTTTTTTT.history, or a .partial or .backup file)", name, ErrNotWALName)
	}
	switch {
	case len(name) == 24 && isHex(name):
		return segmentParts(name, KindSegment), nil
	case len(name) == 24+len(".partial") && strings.HasSuffix(name, ".partial") && isHex(name[:24]):
		return segmentParts(name, KindPartial), nil
	case len(name) == 8+len(".history") && strings.HasSuffix(name, ".history") && isHex(name[:8]):
		tli := hex32(name[:8])
		if tli == 0 {
			return bad()
		}
		return FileName{Kind: KindHistory, Timeline: tli}, nil
	case len(name) == 24+1+8+len(".backup") && strings.HasSuffix(name, ".backup") && isHex(name[:24]) && name[24] == '.' && isHex(name[25:33]):
		f := segmentParts(name, KindBackup)
		f.Offset = hex32(name[25:33])
		return f, nil
	}
	return bad()
}

// SegmentNo returns the segment number of a segment, partial or backup
// file name for segSize, or an error when the name cannot exist at that
// segment size.
func (f FileName) SegmentNo(segSize uint32) (uint64, error) {
	if !ValidSegmentSize(segSize) {
		return 0, fmt.Errorf("invalid wal_segment_size %d: want a power of two from 1 MiB to 1 GiB", segSize)
	}
	switch f.Kind {
	case KindSegment, KindPartial, KindBackup:
	default:
		return 0, fmt.Errorf("a %s has no segment number", f.Kind)
	}
	per := segmentsPerID(segSize)
	if uint64(f.Seg) >= per {
		return 0, fmt.Errorf("segment part %08X is too large for wal_segment_size %d", f.Seg, segSize)
	}
	return uint64(f.LogID)*per + uint64(f.Seg), nil
}

// SegmentName returns the 24-hex-digit segment name that a segment,
// partial or backup file name refers to.
func (f FileName) SegmentName() string {
	return fmt.Sprintf("%08X%08X%08X", f.Timeline, f.LogID, f.Seg)
}

func segmentParts(name string, k Kind) FileName {
	return FileName{Kind: k, Timeline: hex32(name[0:8]), LogID: hex32(name[8:16]), Seg: hex32(name[16:24])}
}

// isHex accepts only upper-case hex digits, as PostgreSQL writes them.
func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

func hex32(s string) uint32 {
	v, _ := strconv.ParseUint(s, 16, 32)
	return uint32(v)
}

// NextSegmentName is the name of the segment after name on the same
// timeline.
func NextSegmentName(name string, segSize uint32) (string, error) {
	f, err := ParseFileName(name)
	if err != nil {
		return "", err
	}
	if f.Kind != KindSegment {
		return "", fmt.Errorf("%s is a %s, not a segment", name, f.Kind)
	}
	no, err := f.SegmentNo(segSize)
	if err != nil {
		return "", err
	}
	if no+1 >= (1<<32)*segmentsPerID(segSize) {
		return "", fmt.Errorf("%s is the last segment of the WAL address space", name)
	}
	return SegmentName(f.Timeline, no+1, segSize), nil
}
