package wal_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgward/pgward/wal"
)

const (
	mib = 1 << 20
	gib = 1 << 30
)

func TestLSNString(t *testing.T) {
	tests := []struct {
		name string
		lsn  wal.LSN
		want string
	}{
		{"zero", 0, "0/0"},
		{"low only", 0x3000000, "0/3000000"},
		{"high only", 0x1600000000, "16/0"},
		{"both halves", 0x16B374D848, "16/B374D848"},
		{"no zero padding", 0x100000001, "1/1"},
		{"max", wal.LSN(^uint64(0)), "FFFFFFFF/FFFFFFFF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := tc.lsn.String(), tc.want; got != want {
				t.Errorf("LSN(%#x).String() = %q, want %q", uint64(tc.lsn), got, want)
			}
		})
	}
}

func TestParseLSN(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want wal.LSN
	}{
		{"zero", "0/0", 0},
		{"postgres example", "16/B374D848", 0x16B374D848},
		{"lower case accepted", "16/b374d848", 0x16B374D848},
		{"leading zeros", "00000000/03000000", 0x3000000},
		{"max", "FFFFFFFF/FFFFFFFF", wal.LSN(^uint64(0))},
		{"one", "0/1", 1},
		{"high one", "1/0", 1 << 32},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ParseLSN(tc.in)
			if err != nil {
				t.Fatalf("ParseLSN(%q) error: %v", tc.in, err)
			}
			if want := tc.want; got != want {
				t.Errorf("ParseLSN(%q) = %#x, want %#x", tc.in, uint64(got), uint64(want))
			}
		})
	}
}

func TestParseLSNInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"no slash", "1"},
		{"empty low", "1/"},
		{"empty high", "/1"},
		{"only slash", "/"},
		{"non-hex high", "G/0"},
		{"non-hex low", "0/G"},
		{"high too long", "123456789/0"},
		{"low too long", "0/123456789"},
		{"two slashes", "1/2/3"},
		{"0x prefix", "0x1/0"},
		{"sign", "+1/0"},
		{"negative", "-1/0"},
		{"space", " 1/0"},
		{"trailing space", "1/0 "},
		{"underscore", "1_0/0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ParseLSN(tc.in)
			if err == nil {
				t.Fatalf("ParseLSN(%q) = %s, want error", tc.in, got)
			}
			if got != 0 {
				t.Errorf("ParseLSN(%q) returned %s with error, want 0", tc.in, got)
			}
		})
	}
}

func TestLSNRoundTrip(t *testing.T) {
	for _, lsn := range []wal.LSN{0, 1, 0xFFFFFFFF, 1 << 32, 0x16B374D848, 0x5000158, wal.LSN(^uint64(0))} {
		t.Run(lsn.String(), func(t *testing.T) {
			got, err := wal.ParseLSN(lsn.String())
			if err != nil {
				t.Fatalf("ParseLSN(%q) error: %v", lsn.String(), err)
			}
			if want := lsn; got != want {
				t.Errorf("ParseLSN(%q) = %#x, want %#x", lsn.String(), uint64(got), uint64(want))
			}
		})
	}
}

func TestValidSegmentSize(t *testing.T) {
	tests := []struct {
		size uint32
		want bool
	}{
		{0, false},
		{1, false},
		{512 << 10, false},
		{mib - 1, false},
		{mib, true},
		{mib + 1, false},
		{2 * mib, true},
		{3 * mib, false},
		{4 * mib, true},
		{8 * mib, true},
		{16 * mib, true},
		{24 * mib, false},
		{32 * mib, true},
		{64 * mib, true},
		{128 * mib, true},
		{256 * mib, true},
		{512 * mib, true},
		{gib - 1, false},
		{gib, true},
		{gib + mib, false},
		{2 * gib, false},
		{^uint32(0), false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.size), func(t *testing.T) {
			if got, want := wal.ValidSegmentSize(tc.size), tc.want; got != want {
				t.Errorf("ValidSegmentSize(%d) = %v, want %v", tc.size, got, want)
			}
		})
	}
	if !wal.ValidSegmentSize(wal.DefaultSegmentSize) {
		t.Errorf("DefaultSegmentSize %d is not valid", wal.DefaultSegmentSize)
	}
	if !wal.ValidSegmentSize(wal.MinSegmentSize) || !wal.ValidSegmentSize(wal.MaxSegmentSize) {
		t.Errorf("Min/MaxSegmentSize not valid")
	}
}

func TestSegmentNoAndStart(t *testing.T) {
	tests := []struct {
		name    string
		lsn     wal.LSN
		segSize uint32
		wantNo  uint64
	}{
		{"16MiB zero", 0, 16 * mib, 0},
		{"16MiB inside first", 0xFFFFFF, 16 * mib, 0},
		{"16MiB second", 0x1000000, 16 * mib, 1},
		{"16MiB high", 0x16B374D848, 16 * mib, 0x16B3},
		{"1MiB", 0x16B374D848, mib, 0x16B37},
		{"64MiB", 0x16B374D848, 64 * mib, 0x16B374D848 >> 26},
		{"1GiB", 0x16B374D848, gib, 0x5A},
		{"max 16MiB", wal.LSN(^uint64(0)), 16 * mib, 1<<40 - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := wal.SegmentNo(tc.lsn, tc.segSize)
			if want := tc.wantNo; got != want {
				t.Fatalf("SegmentNo(%s, %d) = %#x, want %#x", tc.lsn, tc.segSize, got, want)
			}
			start := wal.SegmentStart(got, tc.segSize)
			if start > tc.lsn || uint64(tc.lsn-start) >= uint64(tc.segSize) {
				t.Errorf("SegmentStart(%#x, %d) = %s, does not contain %s", got, tc.segSize, start, tc.lsn)
			}
			if uint64(start)%uint64(tc.segSize) != 0 {
				t.Errorf("SegmentStart(%#x, %d) = %s, not aligned", got, tc.segSize, start)
			}
		})
	}
}

func TestSegmentName(t *testing.T) {
	tests := []struct {
		name    string
		tli     uint32
		segNo   uint64
		segSize uint32
		want    string
	}{
		{"16MiB first", 1, 1, 16 * mib, "000000010000000000000001"},
		{"16MiB zero", 1, 0, 16 * mib, "000000010000000000000000"},
		{"16MiB last of logid 0", 1, 0xFF, 16 * mib, "0000000100000000000000FF"},
		{"16MiB first of logid 1", 1, 0x100, 16 * mib, "000000010000000100000000"},
		{"16MiB timeline", 0x2A, 0x16B3, 16 * mib, "0000002A00000016000000B3"},
		{"16MiB last", 0xFFFFFFFF, 1<<40 - 1, 16 * mib, "FFFFFFFFFFFFFFFF000000FF"},
		{"1MiB last of logid 0", 1, 0xFFF, mib, "000000010000000000000FFF"},
		{"1MiB first of logid 1", 1, 0x1000, mib, "000000010000000100000000"},
		{"64MiB last of logid 0", 1, 0x3F, 64 * mib, "00000001000000000000003F"},
		{"64MiB first of logid 1", 1, 0x40, 64 * mib, "000000010000000100000000"},
		{"1GiB last of logid 0", 1, 3, gib, "000000010000000000000003"},
		{"1GiB first of logid 1", 1, 4, gib, "000000010000000100000000"},
		{"1GiB logid 5", 3, 4*5 + 2, gib, "000000030000000500000002"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := wal.SegmentName(tc.tli, tc.segNo, tc.segSize), tc.want; got != want {
				t.Errorf("SegmentName(%d, %#x, %d) = %q, want %q", tc.tli, tc.segNo, tc.segSize, got, want)
			}
		})
	}
}

func TestHistoryName(t *testing.T) {
	tests := []struct {
		tli  uint32
		want string
	}{
		{1, "00000001.history"},
		{2, "00000002.history"},
		{0x2A, "0000002A.history"},
		{0xFFFFFFFF, "FFFFFFFF.history"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got, want := wal.HistoryName(tc.tli), tc.want; got != want {
				t.Errorf("HistoryName(%d) = %q, want %q", tc.tli, got, want)
			}
			f, err := wal.ParseFileName(tc.want)
			if err != nil {
				t.Fatalf("ParseFileName(%q) error: %v", tc.want, err)
			}
			if got, want := f, (wal.FileName{Kind: wal.KindHistory, Timeline: tc.tli}); got != want {
				t.Errorf("ParseFileName(%q) = %+v, want %+v", tc.want, got, want)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind wal.Kind
		want string
	}{
		{wal.KindSegment, "segment"},
		{wal.KindPartial, "partial segment"},
		{wal.KindHistory, "history file"},
		{wal.KindBackup, "backup history file"},
		{0, "unknown"},
		{99, "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got, want := tc.kind.String(), tc.want; got != want {
				t.Errorf("Kind(%d).String() = %q, want %q", int(tc.kind), got, want)
			}
		})
	}
}

func TestParseFileName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want wal.FileName
	}{
		{"segment", "000000010000000000000001",
			wal.FileName{Kind: wal.KindSegment, Timeline: 1, LogID: 0, Seg: 1}},
		{"segment all parts", "0000002A00000016000000B3",
			wal.FileName{Kind: wal.KindSegment, Timeline: 0x2A, LogID: 0x16, Seg: 0xB3}},
		{"segment max", "FFFFFFFFFFFFFFFFFFFFFFFF",
			wal.FileName{Kind: wal.KindSegment, Timeline: 0xFFFFFFFF, LogID: 0xFFFFFFFF, Seg: 0xFFFFFFFF}},
		{"partial", "000000020000000300000004.partial",
			wal.FileName{Kind: wal.KindPartial, Timeline: 2, LogID: 3, Seg: 4}},
		{"history", "00000002.history",
			wal.FileName{Kind: wal.KindHistory, Timeline: 2}},
		{"history hex", "0000001F.history",
			wal.FileName{Kind: wal.KindHistory, Timeline: 0x1F}},
		{"backup", "000000010000000000000002.00000028.backup",
			wal.FileName{Kind: wal.KindBackup, Timeline: 1, LogID: 0, Seg: 2, Offset: 0x28}},
		{"backup large offset", "0000000100000001000000FE.00FFFFF8.backup",
			wal.FileName{Kind: wal.KindBackup, Timeline: 1, LogID: 1, Seg: 0xFE, Offset: 0xFFFFF8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ParseFileName(tc.in)
			if err != nil {
				t.Fatalf("ParseFileName(%q) error: %v", tc.in, err)
			}
			if want := tc.want; got != want {
				t.Errorf("ParseFileName(%q) = %+v, want %+v", tc.in, got, want)
			}
			if got.Kind == wal.KindHistory {
				return
			}
			if got, want := got.SegmentName(), tc.in[:24]; got != want {
				t.Errorf("ParseFileName(%q).SegmentName() = %q, want %q", tc.in, got, want)
			}
		})
	}
}

func TestParseFileNameInvalid(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"lowercase segment", "0000000100000000000000ff"},
		{"lowercase timeline", "0000000a0000000000000001"},
		{"lowercase partial", "0000000100000000000000ab.partial"},
		{"lowercase history", "0000000a.history"},
		{"lowercase backup offset", "000000010000000000000002.0000002a.backup"},
		{"segment too short", "00000001000000000000001"},
		{"segment too long", "0000000100000000000000010"},
		{"non-hex segment", "00000001000000000000000G"},
		{"segment with space", "00000001 000000000000001"},
		{"timeline 0 history", "00000000.history"},
		{"history too short", "0000001.history"},
		{"history too long", "000000001.history"},
		{"history non-hex", "0000000G.history"},
		{"history uppercase suffix", "00000002.HISTORY"},
		{"history without dot", "00000002history"},
		{"history on segment name", "000000010000000000000001.history"},
		{"partial wrong suffix", "000000010000000000000001.partia"},
		{"partial short segment", "00000001000000000000001.partial"},
		{"partial long segment", "0000000100000000000000011.partial"},
		{"partial on history", "00000001.partial"},
		{"backup short offset", "000000010000000000000002.0000028.backup"},
		{"backup long offset", "000000010000000000000002.000000028.backup"},
		{"backup missing dot", "000000010000000000000002000000028.backup"},
		{"backup wrong separator", "000000010000000000000002_00000028.backup"},
		{"backup non-hex offset", "000000010000000000000002.0000002G.backup"},
		{"backup no offset", "000000010000000000000002.backup"},
		{"backup short segment", "00000001000000000000002.000000028.backup"},
		{"other suffix", "000000010000000000000001.gz"},
		{"directory", "pg_wal/000000010000000000000001"},
		{"status file", "000000010000000000000001.ready"},
		{"temporary", "xlogtemp.1234"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ParseFileName(tc.in)
			if err == nil {
				t.Fatalf("ParseFileName(%q) = %+v, want error", tc.in, got)
			}
			if !errors.Is(err, wal.ErrNotWALName) {
				t.Errorf("ParseFileName(%q) error %v does not wrap ErrNotWALName", tc.in, err)
			}
			if got, want := got, (wal.FileName{}); got != want {
				t.Errorf("ParseFileName(%q) = %+v with error, want zero value", tc.in, got)
			}
		})
	}
}

func mustParseFileName(t *testing.T, name string) wal.FileName {
	t.Helper()
	f, err := wal.ParseFileName(name)
	if err != nil {
		t.Fatalf("ParseFileName(%q): %v", name, err)
	}
	return f
}

func TestFileNameSegmentNo(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		segSize uint32
		want    uint64
	}{
		{"16MiB first", "000000010000000000000001", 16 * mib, 1},
		{"16MiB last of logid 0", "0000000100000000000000FF", 16 * mib, 0xFF},
		{"16MiB logid 1", "000000010000000100000000", 16 * mib, 0x100},
		{"16MiB max", "00000001FFFFFFFF000000FF", 16 * mib, 1<<40 - 1},
		{"16MiB timeline ignored", "0000002A00000016000000B3", 16 * mib, 0x16B3},
		{"16MiB partial", "000000010000000200000003.partial", 16 * mib, 0x203},
		{"16MiB backup", "000000010000000200000003.00000028.backup", 16 * mib, 0x203},
		{"1MiB last of logid 0", "000000010000000000000FFF", mib, 0xFFF},
		{"1MiB logid 1", "000000010000000100000000", mib, 0x1000},
		{"1MiB logid 2 seg 5", "000000010000000200000005", mib, 0x2005},
		{"64MiB last of logid 0", "00000001000000000000003F", 64 * mib, 0x3F},
		{"64MiB logid 1", "000000010000000100000000", 64 * mib, 0x40},
		{"64MiB logid 3 seg 1", "000000010000000300000001", 64 * mib, 3*0x40 + 1},
		{"1GiB last of logid 0", "000000010000000000000003", gib, 3},
		{"1GiB logid 1", "000000010000000100000000", gib, 4},
		{"1GiB logid 7 seg 2", "000000010000000700000002", gib, 7*4 + 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustParseFileName(t, tc.in)
			got, err := f.SegmentNo(tc.segSize)
			if err != nil {
				t.Fatalf("%q.SegmentNo(%d) error: %v", tc.in, tc.segSize, err)
			}
			if want := tc.want; got != want {
				t.Errorf("%q.SegmentNo(%d) = %#x, want %#x", tc.in, tc.segSize, got, want)
			}
			// SegmentName is the inverse.
			if got, want := wal.SegmentName(f.Timeline, got, tc.segSize), tc.in[:24]; got != want {
				t.Errorf("SegmentName(%d, %#x, %d) = %q, want %q", f.Timeline, got, tc.segSize, got, want)
			}
		})
	}
}

func TestFileNameSegmentNoTooLarge(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		segSize uint32
	}{
		{"16MiB seg 100", "000000010000000000000100", 16 * mib},
		{"16MiB seg FFFFFFFF", "0000000100000000FFFFFFFF", 16 * mib},
		{"16MiB partial", "000000010000000000000100.partial", 16 * mib},
		{"16MiB backup", "000000010000000000000100.00000028.backup", 16 * mib},
		{"1MiB seg 1000", "000000010000000000001000", mib},
		{"64MiB seg 40", "000000010000000000000040", 64 * mib},
		{"1GiB seg 4", "000000010000000000000004", gib},
		{"1GiB seg FF", "0000000100000000000000FF", gib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mustParseFileName(t, tc.in)
			got, err := f.SegmentNo(tc.segSize)
			if err == nil {
				t.Fatalf("%q.SegmentNo(%d) = %#x, want error", tc.in, tc.segSize, got)
			}
			if !strings.Contains(err.Error(), "too large") {
				t.Errorf("%q.SegmentNo(%d) error = %q, want it to say \"too large\"", tc.in, tc.segSize, err)
			}
		})
	}
}

func TestFileNameSegmentNoInvalidSize(t *testing.T) {
	f := mustParseFileName(t, "000000010000000000000001")
	for _, size := range []uint32{0, 3, 512 << 10, 2 * gib} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			got, err := f.SegmentNo(size)
			if err == nil {
				t.Errorf("SegmentNo(%d) = %d, want error for invalid segment size", size, got)
			}
		})
	}
}

func TestNextSegmentName(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		segSize uint32
		want    string
	}{
		{"16MiB simple", "000000010000000000000001", 16 * mib, "000000010000000000000002"},
		{"16MiB hex digit carry", "00000001000000000000000F", 16 * mib, "000000010000000000000010"},
		{"16MiB rollover", "0000000100000000000000FF", 16 * mib, "000000010000000100000000"},
		{"16MiB rollover high", "00000001000000FF000000FF", 16 * mib, "000000010000010000000000"},
		{"16MiB keeps timeline", "0000002A00000016000000B3", 16 * mib, "0000002A00000016000000B4"},
		{"1MiB simple", "0000000100000000000000FF", mib, "000000010000000000000100"},
		{"1MiB rollover", "000000010000000000000FFF", mib, "000000010000000100000000"},
		{"64MiB simple", "00000001000000000000003E", 64 * mib, "00000001000000000000003F"},
		{"64MiB rollover", "00000001000000000000003F", 64 * mib, "000000010000000100000000"},
		{"1GiB simple", "000000010000000000000002", gib, "000000010000000000000003"},
		{"1GiB rollover", "000000010000000000000003", gib, "000000010000000100000000"},
		{"1GiB rollover later", "000000010000000A00000003", gib, "000000010000000B00000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.NextSegmentName(tc.in, tc.segSize)
			if err != nil {
				t.Fatalf("NextSegmentName(%q, %d) error: %v", tc.in, tc.segSize, err)
			}
			if want := tc.want; got != want {
				t.Errorf("NextSegmentName(%q, %d) = %q, want %q", tc.in, tc.segSize, got, want)
			}
		})
	}
}

func TestNextSegmentNameErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		segSize uint32
		wantErr string
		notWAL  bool
	}{
		{"not a WAL name", "foo", 16 * mib, "not a WAL file name", true},
		{"lowercase", "0000000100000000000000ff", 16 * mib, "not a WAL file name", true},
		{"partial", "000000010000000000000001.partial", 16 * mib, "partial segment, not a segment", false},
		{"history", "00000002.history", 16 * mib, "history file, not a segment", false},
		{"backup", "000000010000000000000001.00000028.backup", 16 * mib, "backup history file, not a segment", false},
		{"seg too large 16MiB", "000000010000000000000100", 16 * mib, "too large", false},
		{"seg too large 1GiB", "000000010000000000000004", gib, "too large", false},
		{"seg too large 64MiB", "000000010000000000000040", 64 * mib, "too large", false},
		{"seg too large 1MiB", "000000010000000000001000", mib, "too large", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.NextSegmentName(tc.in, tc.segSize)
			if err == nil {
				t.Fatalf("NextSegmentName(%q, %d) = %q, want error", tc.in, tc.segSize, got)
			}
			if got != "" {
				t.Errorf("NextSegmentName(%q, %d) = %q with error, want \"\"", tc.in, tc.segSize, got)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NextSegmentName(%q, %d) error = %q, want it to contain %q", tc.in, tc.segSize, err, tc.wantErr)
			}
			if got, want := errors.Is(err, wal.ErrNotWALName), tc.notWAL; got != want {
				t.Errorf("errors.Is(%v, ErrNotWALName) = %v, want %v", err, got, want)
			}
		})
	}
}

func TestNextSegmentNameEndOfWAL(t *testing.T) {
	// The last segment of the 64-bit LSN space has no successor.
	tests := []struct {
		in      string
		segSize uint32
	}{
		{"00000001FFFFFFFF000000FF", 16 * mib},
		{"00000001FFFFFFFF00000FFF", mib},
		{"00000001FFFFFFFF00000003", gib},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := wal.NextSegmentName(tc.in, tc.segSize)
			if err == nil {
				t.Errorf("NextSegmentName(%q, %d) = %q, want error", tc.in, tc.segSize, got)
			}
		})
	}
}

// TestSegmentWalk checks that walking with NextSegmentName visits
// consecutive segment numbers and crosses LOGID boundaries for every
// segment size.
func TestSegmentWalk(t *testing.T) {
	for _, segSize := range []uint32{mib, 2 * mib, 16 * mib, 64 * mib, 256 * mib, gib} {
		t.Run(fmt.Sprint(segSize>>20, "MiB"), func(t *testing.T) {
			per := uint64(0x100000000) / uint64(segSize)
			start := 3*per - 2 // two segments before logid 3
			name := wal.SegmentName(7, start, segSize)
			for i := uint64(0); i < 5; i++ {
				f := mustParseFileName(t, name)
				no, err := f.SegmentNo(segSize)
				if err != nil {
					t.Fatalf("%q.SegmentNo(%d): %v", name, segSize, err)
				}
				if got, want := no, start+i; got != want {
					t.Fatalf("%q.SegmentNo(%d) = %#x, want %#x", name, segSize, got, want)
				}
				if got, want := f.Timeline, uint32(7); got != want {
					t.Fatalf("%q timeline = %d, want %d", name, got, want)
				}
				if got, want := wal.SegmentNo(wal.SegmentStart(no, segSize), segSize), no; got != want {
					t.Fatalf("SegmentNo(SegmentStart(%#x)) = %#x, want %#x", no, got, want)
				}
				if name, err = wal.NextSegmentName(name, segSize); err != nil {
					t.Fatalf("NextSegmentName: %v", err)
				}
			}
			if got, want := name, wal.SegmentName(7, start+5, segSize); got != want {
				t.Errorf("after 5 steps got %q, want %q", got, want)
			}
		})
	}
}

func FuzzParseFileName(f *testing.F) {
	for _, s := range []string{
		"000000010000000000000001",
		"0000000100000000000000FF",
		"FFFFFFFFFFFFFFFFFFFFFFFF",
		"000000010000000000000001.partial",
		"00000002.history",
		"00000000.history",
		"000000010000000000000002.00000028.backup",
		"0000000100000000000000ff",
		"",
		"foo",
		"000000010000000000000001.ready",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fn, err := wal.ParseFileName(s)
		if err != nil {
			if !errors.Is(err, wal.ErrNotWALName) {
				t.Fatalf("ParseFileName(%q) error %v does not wrap ErrNotWALName", s, err)
			}
			return
		}
		switch fn.Kind {
		case wal.KindSegment:
			if got, want := fn.SegmentName(), s; got != want {
				t.Fatalf("ParseFileName(%q).SegmentName() = %q, want %q", s, got, want)
			}
		case wal.KindPartial:
			if got, want := fn.SegmentName()+".partial", s; got != want {
				t.Fatalf("partial %q round-trips to %q", s, got)
			}
		case wal.KindBackup:
			if got, want := fmt.Sprintf("%s.%08X.backup", fn.SegmentName(), fn.Offset), s; got != want {
				t.Fatalf("backup %q round-trips to %q", s, got)
			}
		case wal.KindHistory:
			if fn.Timeline == 0 {
				t.Fatalf("ParseFileName(%q) accepted timeline 0", s)
			}
			if got, want := wal.HistoryName(fn.Timeline), s; got != want {
				t.Fatalf("history %q round-trips to %q", s, got)
			}
		default:
			t.Fatalf("ParseFileName(%q) returned kind %d", s, fn.Kind)
		}
		if fn.Kind == wal.KindHistory {
			return
		}
		for _, segSize := range []uint32{mib, 16 * mib, 64 * mib, gib} {
			no, err := fn.SegmentNo(segSize)
			if err != nil {
				continue
			}
			if got, want := wal.SegmentName(fn.Timeline, no, segSize), fn.SegmentName(); got != want {
				t.Fatalf("SegmentName(SegmentNo(%q, %d)) = %q, want %q", s, segSize, got, want)
			}
		}
	})
}

func FuzzParseLSN(f *testing.F) {
	for _, s := range []string{"0/0", "16/B374D848", "16/b374d848", "FFFFFFFF/FFFFFFFF", "00000000/00000001", "", "1", "1/", "/1", "G/0", "123456789/0", "+1/0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lsn, err := wal.ParseLSN(s)
		if err != nil {
			return
		}
		back, err := wal.ParseLSN(lsn.String())
		if err != nil {
			t.Fatalf("ParseLSN(%q) = %s, which does not parse: %v", s, lsn, err)
		}
		if got, want := back, lsn; got != want {
			t.Fatalf("ParseLSN(%q) = %#x, but its String %q parses to %#x", s, uint64(want), lsn.String(), uint64(got))
		}
	})
}
