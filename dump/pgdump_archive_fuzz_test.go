package dump_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/dump"
)

// pgdump builds a small custom-format archive (pg_backup_archiver.c
// WriteHead, WriteToc; pg_backup_custom.c) of archive version 1.minor
// with 4-byte ints and 8-byte offsets.
type pgdump struct {
	bytes.Buffer
}

func (p *pgdump) int(v int64) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	p.WriteByte(sign)
	for range 4 {
		p.WriteByte(byte(v))
		v >>= 8
	}
}

func (p *pgdump) str(s string) {
	p.int(int64(len(s)))
	p.WriteString(s)
}

func (p *pgdump) null() { p.int(-1) }

type tocEntry struct {
	id         int64
	tag, desc  string
	namespace  string
	dependsOn  []string
	dataChunks []string // for TABLE DATA: a data block of these chunks
}

func smallArchive(minor byte, entries []tocEntry) []byte {
	var p pgdump
	p.WriteString("PGDMP")
	p.Write([]byte{1, minor, 0, 4, 8, 1})
	if minor >= 15 {
		p.WriteByte(0) // no compression
	} else {
		p.int(0)
	}
	for _, v := range []int64{12, 0, 0, 22, 10, 126, 0} { // 2026-11-22 00:00:12
		p.int(v)
	}
	p.str("shop")
	p.str("15.18 (Debian 15.18-0+deb12u1)")
	p.str("15.18 (Debian 15.18-0+deb12u1)")
	p.int(int64(len(entries)))
	for _, e := range entries {
		p.int(e.id)
		p.int(int64(len(e.dataChunks)))
		p.str("0")
		p.str("0")
		p.str(e.tag)
		p.str(e.desc)
		p.int(2) // section
		p.str("")
		p.str("")
		p.str("")
		p.str(e.namespace)
		p.str("")
		p.str("heap")
		p.str("shop_owner")
		p.str("false")
		for _, d := range e.dependsOn {
			p.str(d)
		}
		p.null()
		p.WriteByte(3) // K_OFFSET_POS_NOT_SET
		p.Write(make([]byte, 8))
	}
	for _, e := range entries {
		if len(e.dataChunks) == 0 {
			continue
		}
		p.WriteByte(1) // BLK_DATA
		p.int(e.id)
		for _, c := range e.dataChunks {
			p.int(int64(len(c)))
			p.WriteString(c)
		}
		p.int(0)
	}
	return p.Bytes()
}

var smallEntries = []tocEntry{
	{id: 200, tag: "t1", desc: "TABLE", namespace: "public"},
	{id: 3300, tag: "t1", desc: "TABLE DATA", namespace: "public", dependsOn: []string{"200"},
		dataChunks: []string{"1\tone\n2\ttw", "o\\nlines\n", "\\.\n\n\n"}},
	{id: 3301, tag: "Odd Name", desc: "TABLE DATA", namespace: "s2", dataChunks: []string{"\\.\n\n\n"}},
}

func TestSmallArchive(t *testing.T) {
	for _, minor := range []byte{14, 15} {
		st, err := dump.ReadArchiveStats(bytes.NewReader(smallArchive(minor, smallEntries)))
		if err != nil {
			t.Fatalf("1.%d: %v", minor, err)
		}
		want := []dump.TableStats{{Schema: "public", Name: "t1", Rows: 2}, {Schema: "s2", Name: "Odd Name", Rows: 0}}
		if st.Tables != 1 || st.Rows != 2 || !reflect.DeepEqual(st.TableData, want) || st.DBName != "shop" {
			t.Errorf("1.%d: %+v", minor, st)
		}
	}
}

// A damaged string length (here the database name's, near the 1 GiB
// limit) fails at the end of the input without allocating what it claims.
func TestReadArchiveStatsDamagedLength(t *testing.T) {
	b := smallArchive(15, nil)
	// The database name's length follows the header (12 bytes) and the
	// creation time (7 ints of 5 bytes).
	at := 12 + 7*5
	if string(b[at+5:at+9]) != "shop" {
		t.Fatalf("layout changed: %q", b[at:at+9])
	}
	b[at+4] = 0x3f // length 0x3f000004
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := dump.ReadArchiveStats(bytes.NewReader(b))
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("a string longer than the archive was read")
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 8<<20 {
		t.Errorf("reading %d bytes allocated %d MiB", len(b), n>>20)
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// FuzzReadArchiveStats reads pg_dump custom-format archives. It never
// panics, always reads its input to the end (it sits on a tee), reads
// the same however the input arrives, and what it counts adds up.
func FuzzReadArchiveStats(f *testing.F) {
	pg15, err := os.ReadFile("testdata/pg15.pgdump")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pg15)
	f.Add(smallArchive(15, smallEntries))
	f.Add(smallArchive(14, smallEntries))
	f.Add(smallArchive(15, nil))
	f.Add(smallArchive(15, smallEntries)[:200])
	f.Add([]byte("PGDMP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		cr := &countingReader{r: bytes.NewReader(b)}
		st, err := dump.ReadArchiveStats(cr)
		if cr.n != len(b) {
			t.Fatalf("read %d of %d bytes (error %v): the writer of the tee would stall", cr.n, len(b), err)
		}
		if err != nil {
			if st != nil {
				t.Fatalf("stats %+v returned with error %v", st, err)
			}
		} else {
			var rows int64
			for _, td := range st.TableData {
				if td.Rows < 0 {
					t.Fatalf("table %+v has negative rows", td)
				}
				rows += td.Rows
			}
			if rows != st.Rows || st.Tables < 0 {
				t.Fatalf("stats %+v: rows of the tables add up to %d", st, rows)
			}
		}
		st2, err2 := dump.ReadArchiveStats(iotest.HalfReader(bytes.NewReader(b)))
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(st, st2) {
			t.Fatalf("read whole: %+v, %v; read in halves: %+v, %v", st, err, st2, err2)
		}
	})
}

// Rows counted are the same however pg_dump cut the data into chunks:
// one per row (as pg_dump -Z0 writes), one byte each, the end marker
// split anywhere, or a long chunk.
func TestRowsWhateverTheChunks(t *testing.T) {
	data := "1\ta\n2\tb\\nc\n3\t\\.\n4\td\n\\.\n\n\n"
	cuts := map[string][]string{
		"one":  {data},
		"rows": {"1\ta\n", "2\tb\\nc\n", "3\t\\.\n", "4\td\n", "\\.\n\n\n"},
	}
	var bytewise []string
	for i := range data {
		bytewise = append(bytewise, data[i:i+1])
	}
	cuts["bytes"] = bytewise
	for at := 1; at < len(data); at++ {
		cuts[fmt.Sprintf("cut at %d", at)] = []string{data[:at], data[at:]}
	}
	for name, chunks := range cuts {
		entries := []tocEntry{
			{id: 200, tag: "t1", desc: "TABLE", namespace: "public"},
			{id: 3300, tag: "t1", desc: "TABLE DATA", namespace: "public", dependsOn: []string{"200"}, dataChunks: chunks},
		}
		st, err := dump.ReadArchiveStats(bytes.NewReader(smallArchive(15, entries)))
		if err != nil || st.Rows != 4 {
			t.Errorf("%s: %v rows, %v; want 4", name, st, err)
		}
	}
}
