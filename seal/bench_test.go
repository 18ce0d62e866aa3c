package seal_test

import (
	"bytes"
	"io"
	"os"
	"testing"

	"filippo.io/age"

	"github.com/pgward/pgward/seal"
)

// benchSegment is a real WAL segment when PGWARD_BENCH_SEGMENT names one
// (make bench does), else WAL-like synthetic data.
func benchSegment(b *testing.B) []byte {
	if p := os.Getenv("PGWARD_BENCH_SEGMENT"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	return walLike(16 << 20)
}

func BenchmarkSeal(b *testing.B) {
	data := benchSegment(b)
	_, rcpt := newKey(b)
	s := seal.NewSealer(rcpt, seal.LevelFastest, 0)
	var out bytes.Buffer
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		out.Reset()
		w, err := s.NewWriter(&out, seal.Claims{Key: "k"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(data))/float64(out.Len()), "ratio")
}

func BenchmarkOpen(b *testing.B) {
	data := benchSegment(b)
	id, rcpt := newKey(b)
	sealed := sealBytes(b, seal.NewSealer(rcpt, seal.LevelFastest, 0), data)
	o := seal.NewOpener([]age.Identity{id})
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		r, err := o.NewReader(bytes.NewReader(sealed), seal.Expect{Size: -1})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			b.Fatal(err)
		}
		r.Close()
	}
}
