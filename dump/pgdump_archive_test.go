package dump_test

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/dump"
)

// testdata/pg15.pgdump is `pg_dump -Fc -Z0` (PostgreSQL 15.18, written
// to a pipe) of a database holding: t1 (1000 rows, each with an escaped
// newline and backslash in its text), s2."Odd Name" (3 rows), an empty
// table, a table partitioned in two (100 rows each), a materialized view,
// a sequence and a large object.
func TestReadArchiveStats(t *testing.T) {
	data, err := os.ReadFile("testdata/pg15.pgdump")
	if err != nil {
		t.Fatal(err)
	}
	st, err := dump.ReadArchiveStats(iotest.HalfReader(bytes.NewReader(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := []dump.TableStats{
		{Schema: "public", Name: "empty", Rows: 0},
		{Schema: "public", Name: "parted_1", Rows: 100},
		{Schema: "public", Name: "parted_2", Rows: 100},
		{Schema: "public", Name: "t1", Rows: 1000},
		{Schema: "s2", Name: "Odd Name", Rows: 3},
	}
	if !slices.Equal(st.TableData, want) {
		t.Errorf("TableData = %+v\nwant %+v", st.TableData, want)
	}
	if st.Tables != 6 || st.Rows != 1203 || st.DBName != "fx" || !strings.HasPrefix(st.DumpedBy, "15.18") {
		t.Errorf("Tables %d, Rows %d, DBName %q, DumpedBy %q", st.Tables, st.Rows, st.DBName, st.DumpedBy)
	}
}

func TestReadArchiveStatsRefusesDamage(t *testing.T) {
	data, err := os.ReadFile("testdata/pg15.pgdump")
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"truncated":  data[:len(data)-100],
		"not a dump": []byte("-- PostgreSQL database dump\n"),
		"empty":      nil,
	} {
		if _, err := dump.ReadArchiveStats(bytes.NewReader(in)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
