package filebackup

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// Content comes back from its chunks; a sparse file's holes are recorded,
// not stored.
func TestReadContent(t *testing.T) {
	s := Secret{5}
	sp, err := s.NewSplitter()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stored := map[string][]byte{}
	store := func(id string, d []byte) error { stored[id] = bytes.Clone(d); return nil }
	rebuild := func(n Node) []byte {
		var data []byte
		for _, id := range n.Chunks {
			data = append(data, stored[id]...)
		}
		if n.Data == nil {
			return data
		}
		out := make([]byte, n.Size)
		var pos int64
		for _, e := range n.Data {
			copy(out[e[0]:e[0]+e[1]], data[pos:pos+e[1]])
			pos += e[1]
		}
		return out
	}

	plain := filepath.Join(dir, "plain")
	content := data(6, 3<<20+17)
	os.WriteFile(plain, content, 0o644)
	var n Node
	if err := sp.ReadContent(plain, s, &n, store); err != nil {
		t.Fatal(err)
	}
	if n.Data != nil || n.Changed || n.Size != int64(len(content)) || !bytes.Equal(rebuild(n), content) {
		t.Errorf("plain file: data %v, changed %v, size %d, round trip %v", n.Data, n.Changed, n.Size, bytes.Equal(rebuild(n), content))
	}

	// 64 MiB with 1 MiB of data in the middle and some at the end.
	sparse := filepath.Join(dir, "sparse")
	f, _ := os.Create(sparse)
	mid, tail := data(7, 1<<20), []byte("the end")
	f.WriteAt(mid, 32<<20)
	f.WriteAt(tail, 64<<20-int64(len(tail)))
	f.Close()
	sn := Node{Path: "sparse", Type: TypeFile}
	if err := sp.ReadContent(sparse, s, &sn, store); err != nil {
		t.Fatal(err)
	}
	var dataBytes int64
	for _, e := range sn.Data {
		dataBytes += e[1]
	}
	if sn.Data == nil || dataBytes > 4<<20 {
		t.Errorf("sparse file: extents %v (%d bytes of data): the holes were read", sn.Data, dataBytes)
	}
	want, _ := os.ReadFile(sparse)
	if !bytes.Equal(rebuild(sn), want) {
		t.Error("sparse file: its content does not come back")
	}
	if err := sn.Validate(); err != nil {
		t.Errorf("sparse node: %v", err)
	}

	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o644)
	var en Node
	if err := sp.ReadContent(empty, s, &en, store); err != nil || len(en.Chunks) != 0 || en.Data != nil {
		t.Errorf("empty file: %+v, %v", en, err)
	}
}

// A file that changes while it is read is marked.
func TestReadContentMarksChange(t *testing.T) {
	s := Secret{5}
	sp, _ := s.NewSplitter()
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, data(8, 2<<20), 0o644)
	var n Node
	first := true
	err := sp.ReadContent(p, s, &n, func(string, []byte) error {
		if first {
			first = false
			fh, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			fh.Write([]byte("appended while read"))
			fh.Close()
		}
		return nil
	})
	if err != nil || !n.Changed {
		t.Errorf("changed while read: %v, changed %v", err, n.Changed)
	}
}
