package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/wal"
)

// pageHeader describes an XLogLongPageHeaderData.
type pageHeader struct {
	magic     uint16
	info      uint16
	tli       uint32
	pageAddr  uint64
	remLen    uint32
	sysID     uint64
	segSize   uint32
	blockSize uint32
}

const (
	pg15Magic  = 0xD110
	longHeader = 0x0002
	sysID      = 7301234567890123456
)

// validHeader is the header of segment 000000010000000000000003 of a
// PostgreSQL 15 cluster with default sizes.
func validHeader() pageHeader {
	return pageHeader{
		magic:     pg15Magic,
		info:      longHeader,
		tli:       1,
		pageAddr:  3 * 16 * mib,
		sysID:     sysID,
		segSize:   16 * mib,
		blockSize: 8192,
	}
}

// bytes encodes h as PostgreSQL lays it out on a little-endian host.
func (h pageHeader) bytes() []byte {
	b := make([]byte, wal.LongHeaderSize)
	le := binary.LittleEndian
	le.PutUint16(b[0:], h.magic)
	le.PutUint16(b[2:], h.info)
	le.PutUint32(b[4:], h.tli)
	le.PutUint64(b[8:], h.pageAddr)
	le.PutUint32(b[16:], h.remLen)
	// b[20:24] is alignment padding.
	le.PutUint64(b[24:], h.sysID)
	le.PutUint32(b[32:], h.segSize)
	le.PutUint32(b[36:], h.blockSize)
	return b
}

func mustParseHeader(t *testing.T, b []byte) wal.SegmentHeader {
	t.Helper()
	h, err := wal.ParseSegmentHeader(b)
	if err != nil {
		t.Fatalf("ParseSegmentHeader: %v", err)
	}
	return h
}

func TestHeaderLayout(t *testing.T) {
	// Guard the hand-built layout against accidental edits.
	b := validHeader().bytes()
	if got, want := len(b), 40; got != want {
		t.Fatalf("len = %d, want %d", got, want)
	}
	if got, want := b[:4], []byte{0x10, 0xD1, 0x02, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("magic/info bytes = % X, want % X", got, want)
	}
	if got, want := b[32:36], []byte{0, 0, 0, 1}; !bytes.Equal(got, want) {
		t.Errorf("segment size bytes = % X, want % X", got, want)
	}
}

func TestParseSegmentHeader(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*pageHeader)
		want   wal.SegmentHeader
	}{
		{
			name:   "pg15 default",
			modify: func(*pageHeader) {},
			want: wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0x3000000,
				SystemIdentifier: sysID, SegmentSize: 16 * mib, BlockSize: 8192},
		},
		{
			name: "other info bits",
			modify: func(h *pageHeader) {
				h.info = longHeader | 0x0001 | 0x0004
				h.remLen = 123
			},
			want: wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0x3000000,
				SystemIdentifier: sysID, SegmentSize: 16 * mib, BlockSize: 8192},
		},
		{
			name: "1MiB segments later timeline",
			modify: func(h *pageHeader) {
				h.segSize = mib
				h.tli = 5
				h.pageAddr = 0x16B3700000
			},
			want: wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 5, PageAddr: 0x16B3700000,
				SystemIdentifier: sysID, SegmentSize: mib, BlockSize: 8192},
		},
		{
			name: "64MiB segments",
			modify: func(h *pageHeader) {
				h.segSize = 64 * mib
				h.pageAddr = 0x1C000000
			},
			want: wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0x1C000000,
				SystemIdentifier: sysID, SegmentSize: 64 * mib, BlockSize: 8192},
		},
		{
			name: "1GiB segments 32k blocks",
			modify: func(h *pageHeader) {
				h.segSize = gib
				h.blockSize = 32768
				h.pageAddr = 0x2C0000000
			},
			want: wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0x2C0000000,
				SystemIdentifier: sysID, SegmentSize: gib, BlockSize: 32768},
		},
		{
			name:   "segment zero",
			modify: func(h *pageHeader) { h.pageAddr = 0 },
			want: wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0,
				SystemIdentifier: sysID, SegmentSize: 16 * mib, BlockSize: 8192},
		},
		{
			name:   "unknown future magic",
			modify: func(h *pageHeader) { h.magic = 0xD1F0 },
			want: wal.SegmentHeader{Magic: 0xD1F0, PGVersion: 0, Timeline: 1, PageAddr: 0x3000000,
				SystemIdentifier: sysID, SegmentSize: 16 * mib, BlockSize: 8192},
		},
		{
			name:   "pg11 magic",
			modify: func(h *pageHeader) { h.magic = 0xD098 },
			want: wal.SegmentHeader{Magic: 0xD098, PGVersion: 11, Timeline: 1, PageAddr: 0x3000000,
				SystemIdentifier: sysID, SegmentSize: 16 * mib, BlockSize: 8192},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ph := validHeader()
			tc.modify(&ph)
			got, err := wal.ParseSegmentHeader(ph.bytes())
			if err != nil {
				t.Fatalf("ParseSegmentHeader error: %v", err)
			}
			if want := tc.want; got != want {
				t.Errorf("ParseSegmentHeader = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseSegmentHeaderVersions(t *testing.T) {
	tests := []struct {
		magic uint16
		want  int
	}{
		{0xD097, 10},
		{0xD098, 11},
		{0xD101, 12},
		{0xD106, 13},
		{0xD10D, 14},
		{0xD110, 15},
		{0xD113, 16},
		{0xD116, 17},
		{0xD118, 18},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("PG%d", tc.want), func(t *testing.T) {
			ph := validHeader()
			ph.magic = tc.magic
			h := mustParseHeader(t, ph.bytes())
			if got, want := h.PGVersion, tc.want; got != want {
				t.Errorf("magic %04X: PGVersion = %d, want %d", tc.magic, got, want)
			}
			if got, want := h.Magic, tc.magic; got != want {
				t.Errorf("Magic = %04X, want %04X", got, want)
			}
		})
	}
}

func TestParseSegmentHeaderLongerInput(t *testing.T) {
	// A whole first page: only the first 40 bytes matter.
	page := make([]byte, 8192)
	copy(page, validHeader().bytes())
	for i := wal.LongHeaderSize; i < len(page); i++ {
		page[i] = 0xFF
	}
	h := mustParseHeader(t, page)
	if got, want := h.PageAddr, wal.LSN(0x3000000); got != want {
		t.Errorf("PageAddr = %s, want %s", got, want)
	}
}

func TestParseSegmentHeaderErrors(t *testing.T) {
	valid := validHeader().bytes()
	tests := []struct {
		name    string
		input   func() []byte
		wantMsg string
	}{
		{"nil", func() []byte { return nil }, "shorter than a page header"},
		{"empty", func() []byte { return []byte{} }, "shorter than a page header"},
		{"one byte short", func() []byte { return valid[:wal.LongHeaderSize-1] }, "shorter than a page header"},
		{"short page header", func() []byte { return valid[:24] }, "shorter than a page header"},
		{"zeros", func() []byte { return make([]byte, wal.LongHeaderSize) }, "no long header"},
		{"no long header bit", func() []byte {
			h := validHeader()
			h.info = 0x0005
			return h.bytes()
		}, "no long header"},
		{"segment size zero", func() []byte {
			h := validHeader()
			h.segSize = 0
			return h.bytes()
		}, "segment size 0"},
		{"segment size not power of two", func() []byte {
			h := validHeader()
			h.segSize = 24 * mib
			return h.bytes()
		}, "segment size"},
		{"segment size too small", func() []byte {
			h := validHeader()
			h.segSize = 512 << 10
			h.pageAddr = 0
			return h.bytes()
		}, "segment size"},
		{"segment size too large", func() []byte {
			h := validHeader()
			h.segSize = 2 * gib
			h.pageAddr = 0
			return h.bytes()
		}, "segment size"},
		{"segment size big-endian", func() []byte {
			h := validHeader()
			h.segSize = 0x00000001 // 16 MiB byte-swapped
			return h.bytes()
		}, "segment size"},
		{"block size zero", func() []byte {
			h := validHeader()
			h.blockSize = 0
			return h.bytes()
		}, "block size"},
		{"block size not power of two", func() []byte {
			h := validHeader()
			h.blockSize = 3000
			return h.bytes()
		}, "block size"},
		{"block size too large", func() []byte {
			h := validHeader()
			h.blockSize = 1 << 17
			return h.bytes()
		}, "block size"},
		{"bad magic", func() []byte {
			h := validHeader()
			h.magic = 0x1234
			return h.bytes()
		}, "unknown page magic 1234"},
		{"zero magic", func() []byte {
			h := validHeader()
			h.magic = 0
			return h.bytes()
		}, "unknown page magic"},
		{"page address inside segment", func() []byte {
			h := validHeader()
			h.pageAddr = 3*16*mib + 8192
			return h.bytes()
		}, "not at a segment boundary"},
		{"page address off by one", func() []byte {
			h := validHeader()
			h.pageAddr = 16*mib - 1
			return h.bytes()
		}, "not at a segment boundary"},
		{"page address aligned to smaller segment", func() []byte {
			h := validHeader()
			h.segSize = 64 * mib
			h.pageAddr = 16 * mib
			return h.bytes()
		}, "not at a segment boundary"},
		{"page address inside segment pg11", func() []byte {
			h := validHeader()
			h.magic = 0xD098
			h.pageAddr = 3*16*mib + 8192
			return h.bytes()
		}, "not at a segment boundary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wal.ParseSegmentHeader(tc.input())
			if err == nil {
				t.Fatal("ParseSegmentHeader succeeded, want error")
			}
			if !errors.Is(err, wal.ErrNotSegment) {
				t.Errorf("error %v does not wrap ErrNotSegment", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

func TestReadSegmentHeader(t *testing.T) {
	data := append(validHeader().bytes(), make([]byte, 100)...)
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"bytes reader", bytes.NewReader(data)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data))},
		{"half reader", iotest.HalfReader(bytes.NewReader(data))},
		{"data err at EOF", iotest.DataErrReader(bytes.NewReader(validHeader().bytes()))},
	}
	want := mustParseHeader(t, validHeader().bytes())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := wal.ReadSegmentHeader(tc.r)
			if err != nil {
				t.Fatalf("ReadSegmentHeader error: %v", err)
			}
			if got != want {
				t.Errorf("ReadSegmentHeader = %+v, want %+v", got, want)
			}
		})
	}
}

func TestReadSegmentHeaderConsumesOnlyHeader(t *testing.T) {
	data := append(validHeader().bytes(), "rest"...)
	r := bytes.NewReader(data)
	if _, err := wal.ReadSegmentHeader(r); err != nil {
		t.Fatalf("ReadSegmentHeader: %v", err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(rest), "rest"; got != want {
		t.Errorf("remaining = %q, want %q", got, want)
	}
}

func TestReadSegmentHeaderErrors(t *testing.T) {
	errBoom := errors.New("boom")
	valid := validHeader().bytes()
	noLong := validHeader()
	noLong.info = 0
	tests := []struct {
		name       string
		r          io.Reader
		wantNotSeg bool
		wantErr    error
	}{
		{"empty", bytes.NewReader(nil), true, nil},
		{"short", bytes.NewReader(valid[:39]), true, nil},
		{"short one byte at a time", iotest.OneByteReader(bytes.NewReader(valid[:10])), true, nil},
		{"invalid header", bytes.NewReader(noLong.bytes()), true, nil},
		{"read error", iotest.ErrReader(errBoom), false, errBoom},
		{"read error after data", io.MultiReader(bytes.NewReader(valid[:20]), iotest.ErrReader(errBoom)), false, errBoom},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := wal.ReadSegmentHeader(tc.r)
			if err == nil {
				t.Fatal("ReadSegmentHeader succeeded, want error")
			}
			if got, want := errors.Is(err, wal.ErrNotSegment), tc.wantNotSeg; got != want {
				t.Errorf("errors.Is(%v, ErrNotSegment) = %v, want %v", err, got, want)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v does not wrap %v", err, tc.wantErr)
			}
		})
	}
}

func TestCheckName(t *testing.T) {
	// Built as a literal so that CheckName is tested independently of
	// ParseSegmentHeader.
	hdr := func(tli uint32, addr wal.LSN, segSize uint32) wal.SegmentHeader {
		return wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: tli, PageAddr: addr,
			SystemIdentifier: sysID, SegmentSize: segSize, BlockSize: 8192}
	}
	tests := []struct {
		name    string
		h       wal.SegmentHeader
		file    string
		wantErr string // "" for success
	}{
		{"matching", hdr(1, 0x3000000, 16*mib), "000000010000000000000003", ""},
		{"matching partial", hdr(1, 0x3000000, 16*mib), "000000010000000000000003.partial", ""},
		{"new timeline first segment", hdr(1, 0x3000000, 16*mib), "000000020000000000000003", ""},
		{"higher timeline in header", hdr(3, 0x3000000, 16*mib), "000000020000000000000003", "timeline 3"},
		{"matching after rollover", hdr(1, 0x100000000, 16*mib), "000000010000000100000000", ""},
		{"matching 1MiB", hdr(1, 0x16B3700000, mib), "000000010000001600000B37", ""},
		{"matching 64MiB", hdr(1, 0x1C000000, 64*mib), "000000010000000000000007", ""},
		{"matching 1GiB", hdr(2, 0x2C0000000, gib), "000000020000000200000003", ""},
		{"different segment", hdr(1, 0x3000000, 16*mib), "000000010000000000000004", "does not match"},
		{"different logid", hdr(1, 0x3000000, 16*mib), "000000010000000100000003", "does not match"},
		{"different segment partial", hdr(1, 0x3000000, 16*mib), "000000010000000000000002.partial", "does not match"},
		{"16MiB name for 64MiB header", hdr(1, 0x1C000000, 64*mib), "00000001000000000000001C", "does not match"},
		{"seg too large for size", hdr(1, 0x3000000, 16*mib), "000000010000000000000100", "too large"},
		{"seg too large for 1GiB", hdr(1, 0, gib), "000000010000000000000004", "too large"},
		{"not a WAL name", hdr(1, 0x3000000, 16*mib), "000000010000000000000003.gz", "not a WAL file name"},
		{"lowercase name", hdr(1, 0xFF000000, 16*mib), "0000000100000000000000ff", "not a WAL file name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.h.CheckName(tc.file)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckName(%q) error: %v", tc.file, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckName(%q) succeeded, want error containing %q", tc.file, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("CheckName(%q) error = %q, want it to contain %q", tc.file, err, tc.wantErr)
			}
		})
	}
}

func TestCheckNameRejectsNonSegmentNames(t *testing.T) {
	h := wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0,
		SegmentSize: 16 * mib, BlockSize: 8192}
	for _, name := range []string{"00000001.history", "00000002.history"} {
		t.Run(name, func(t *testing.T) {
			if err := h.CheckName(name); err == nil {
				t.Errorf("CheckName(%q) succeeded for a header of segment 0, want error", name)
			}
		})
	}
}

func TestCheckNameMessage(t *testing.T) {
	h := wal.SegmentHeader{Magic: pg15Magic, PGVersion: 15, Timeline: 1, PageAddr: 0x3000000,
		SegmentSize: 16 * mib, BlockSize: 8192}
	err := h.CheckName("000000020000000000000004")
	if err == nil {
		t.Fatal("CheckName succeeded, want error")
	}
	// The message names the file, the LSN and the segment the content
	// belongs to (on the file's timeline).
	for _, want := range []string{"000000020000000000000004", "0/3000000", "000000020000000000000003", "does not match"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestParseThenCheckName(t *testing.T) {
	h := mustParseHeader(t, validHeader().bytes())
	if err := h.CheckName("000000010000000000000003"); err != nil {
		t.Errorf("CheckName of matching name: %v", err)
	}
	if err := h.CheckName("000000020000000000000003"); err != nil {
		t.Errorf("CheckName of name on new timeline: %v", err)
	}
	if err := h.CheckName("000000010000000000000004"); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("CheckName of other segment: error = %v, want \"does not match\"", err)
	}
}

func FuzzParseSegmentHeader(f *testing.F) {
	f.Add(validHeader().bytes())
	for _, magic := range []uint16{0xD097, 0xD098, 0xD110, 0xD118, 0x1234} {
		h := validHeader()
		h.magic = magic
		f.Add(h.bytes())
	}
	noLong := validHeader()
	noLong.info = 0
	f.Add(noLong.bytes())
	badAddr := validHeader()
	badAddr.pageAddr++
	f.Add(badAddr.bytes())
	f.Add([]byte{})
	f.Add(make([]byte, wal.LongHeaderSize))
	f.Add(validHeader().bytes()[:39])
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := wal.ParseSegmentHeader(b)
		h2, err2 := wal.ReadSegmentHeader(bytes.NewReader(b))
		if (err == nil) != (err2 == nil) || h != h2 {
			t.Fatalf("ParseSegmentHeader = %+v, %v; ReadSegmentHeader = %+v, %v", h, err, h2, err2)
		}
		if err != nil {
			if !errors.Is(err, wal.ErrNotSegment) {
				t.Fatalf("error %v does not wrap ErrNotSegment", err)
			}
			return
		}
		if !wal.ValidSegmentSize(h.SegmentSize) {
			t.Fatalf("accepted segment size %d", h.SegmentSize)
		}
		if uint64(h.PageAddr)%uint64(h.SegmentSize) != 0 {
			t.Fatalf("accepted page address %s for segment size %d", h.PageAddr, h.SegmentSize)
		}
		// The segment's own name must pass CheckName (unless the segment
		// number is beyond what a 24-digit name can hold, which an aligned
		// 64-bit LSN never is).
		no := wal.SegmentNo(h.PageAddr, h.SegmentSize)
		name := wal.SegmentName(h.Timeline, no, h.SegmentSize)
		if err := h.CheckName(name); err != nil {
			t.Fatalf("CheckName(%q) for %+v: %v", name, h, err)
		}
	})
}

func TestReadControlSystemIdentifier(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "pg_control")
	b := make([]byte, 8192)
	binary.LittleEndian.PutUint64(b[0:], 7310000000000000001)
	binary.LittleEndian.PutUint32(b[8:], 1300)
	if err := os.WriteFile(good, b, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := wal.ReadControlSystemIdentifier(good)
	if err != nil || got != 7310000000000000001 {
		t.Fatalf("ReadControlSystemIdentifier = %d, %v", got, err)
	}
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, make([]byte, 100), 0o600)
	if _, err := wal.ReadControlSystemIdentifier(bad); err == nil || !strings.Contains(err.Error(), "not a pg_control") {
		t.Errorf("zeroed file: %v", err)
	}
	if _, err := wal.ReadControlSystemIdentifier(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
