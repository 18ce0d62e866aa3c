package filebackup

import (
	"bytes"
	"errors"
	"testing"
)

// packOf writes a pack of the chunks of b and returns its plaintext and
// entries.
func packOf(t testing.TB, s Secret, b []byte) ([]byte, []PackEntry) {
	t.Helper()
	var plain bytes.Buffer
	pw := NewPackWriter(&plain)
	sp, err := s.NewSplitter()
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Split(bytes.NewReader(b), func(c []byte) error { return pw.Add(s.ChunkID(c), c) }); err != nil {
		t.Fatal(err)
	}
	entries, err := pw.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return plain.Bytes(), entries
}

func TestPackRoundTrip(t *testing.T) {
	s := Secret{7} // fixed, so the boundaries (and the chunk count) are too
	file := data(2, 12<<20)
	plain, entries := packOf(t, s, file)
	parsed, err := ParsePack(plain, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed) != len(entries) || len(entries) < 3 {
		t.Fatalf("parsed %d entries, wrote %d", len(parsed), len(entries))
	}
	for i := range entries {
		if parsed[i] != entries[i] {
			t.Errorf("entry %d: parsed %+v, wrote %+v", i, parsed[i], entries[i])
		}
	}
	// Streaming a subset, as a restore does, gives exactly those chunks.
	want := []PackEntry{entries[0], entries[2]}
	var got [][]byte
	err = ReadChunks(bytes.NewReader(plain), want, s, nil, func(e PackEntry, d []byte) error {
		got = append(got, append([]byte(nil), d...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[0], file[:entries[0].Length]) || !bytes.Equal(got[1], file[entries[2].Offset:entries[2].Offset+entries[2].Length]) {
		t.Error("ReadChunks gave other data")
	}
	// An empty pack is a pack.
	var empty bytes.Buffer
	if _, err := NewPackWriter(&empty).Finish(); err != nil {
		t.Fatal(err)
	}
	if e, err := ParsePack(empty.Bytes(), s); err != nil || len(e) != 0 {
		t.Errorf("empty pack: %v, %v", e, err)
	}
}

// A pack that is not what it claims is refused, whatever was changed.
func TestPackRefusesForgeries(t *testing.T) {
	s, other := Secret{8}, Secret{9}
	plain, entries := packOf(t, s, data(3, 3<<20))
	flip := func(at int) []byte { b := bytes.Clone(plain); b[at] ^= 1; return b }
	for name, b := range map[string][]byte{
		"a data byte":     flip(10),
		"a table byte":    flip(len(plain) - 20),
		"the magic":       flip(len(plain) - 1),
		"the length":      flip(len(plain) - 9),
		"truncated":       plain[:len(plain)-5],
		"tail only":       plain[len(plain)-16:],
		"nothing":         nil,
		"a data byte cut": append(bytes.Clone(plain[:5]), plain[6:]...),
	} {
		if _, err := ParsePack(b, s); !errors.Is(err, ErrBadPack) {
			t.Errorf("%s: ParsePack = %v, want ErrBadPack", name, err)
		}
	}
	if _, err := ParsePack(plain, other); !errors.Is(err, ErrBadPack) {
		t.Error("another domain's secret accepted the pack")
	}
	if err := ReadChunks(bytes.NewReader(flip(10)), entries[:1], s, nil, func(PackEntry, []byte) error { return nil }); !errors.Is(err, ErrBadPack) {
		t.Errorf("ReadChunks over a changed chunk: %v", err)
	}
	bad := []PackEntry{{ID: "x", Offset: 0, Length: 4}}
	if err := ReadChunks(bytes.NewReader(plain), bad, s, nil, func(PackEntry, []byte) error { return nil }); !errors.Is(err, ErrBadPack) {
		t.Errorf("ReadChunks with a forged index entry: %v", err)
	}
	if err := NewPackWriter(&bytes.Buffer{}).Add("nothex", nil); err == nil {
		t.Error("a malformed id was added")
	}
}

func FuzzParsePack(f *testing.F) {
	s := Secret{1, 2, 3}
	plain, _ := packOf(f, s, data(4, 1<<20))
	f.Add(plain)
	f.Add([]byte(packMagic))
	f.Add(append(make([]byte, 8), packMagic...))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := ParsePack(b, s)
		if err != nil {
			return
		}
		var end int64
		for _, e := range entries {
			if e.Offset != end || e.Length < 0 || s.ChunkID(b[e.Offset:e.Offset+e.Length]) != e.ID {
				t.Fatalf("accepted a bad entry %+v", e)
			}
			end += e.Length
		}
	})
}
