package basebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/wal"
)

// recordSink is a Sink that writes down what dispatch hands it, and fails
// on the Write calls it is told to.
type recordSink struct {
	events  []string
	failAt  int // fail the failAt-th call (1-based); 0: never
	calls   int
	errFail error
}

func (s *recordSink) call(ev string) error {
	s.calls++
	s.events = append(s.events, ev)
	if s.calls == s.failAt {
		return s.errFail
	}
	return nil
}

func (s *recordSink) Begin(wal.LSN, uint32, []Tablespace) error { return s.call("begin") }
func (s *recordSink) Archive(name, location string) error {
	return s.call(fmt.Sprintf("n %q %q", name, location))
}
func (s *recordSink) Write(p []byte) error { return s.call(fmt.Sprintf("d %q", p)) }
func (s *recordSink) Manifest() error      { return s.call("m") }
func (s *recordSink) Progress(done int64)  { s.call(fmt.Sprintf("p %d", done)) }

// splitCopyData cuts fuzz input into CopyData payloads: each is a 2-byte
// big-endian length and that many bytes (fewer at the end).
func splitCopyData(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		b = b[2:]
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func copyData(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

// FuzzDispatch feeds PostgreSQL 15's BASE_BACKUP stream messages
// (basebackup_copy.c: 'n' new archive, 'd' data, 'p' progress, 'm'
// manifest) to dispatch, as Run does with each CopyData. It never panics;
// each message it accepts is exactly what the sink was told, and each it
// refuses told the sink nothing, unless the sink itself failed.
func FuzzDispatch(f *testing.F) {
	progress := binary.BigEndian.AppendUint64([]byte{'p'}, 1<<20)
	for _, seed := range [][]byte{
		copyData([]byte("nbase.tar\x00\x00"), []byte("dtar data"), progress, []byte("n16385.tar\x00/srv/tbs\x00"), []byte("dmore"), []byte("m"), []byte(`d{"PostgreSQL-Backup-Manifest-Version": 1}`)),
		copyData([]byte("nbase.tar\x00")),
		copyData([]byte("nbase.tar")),
		copyData([]byte("n\x00\x00extra")),
		copyData([]byte("p1234567")),
		copyData([]byte("p123456789")),
		copyData([]byte("d")),
		copyData([]byte("x")),
		copyData([]byte{}),
	} {
		f.Add(seed, uint8(0))
	}
	f.Add(copyData([]byte("nbase.tar\x00\x00"), []byte("dx")), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, failAt uint8) {
		errSink := errors.New("sink failed")
		sink := &recordSink{failAt: int(failAt), errFail: errSink}
		for _, msg := range splitCopyData(stream) {
			if len(msg) == 0 {
				continue // Run refuses an empty CopyData before dispatch
			}
			before := len(sink.events)
			err := dispatch(msg, sink)
			got := sink.events[before:]
			if errors.Is(err, errSink) {
				if sink.calls != sink.failAt {
					t.Fatalf("dispatch(%q) returned the sink's error from call %d, which did not fail", msg, sink.calls)
				}
				return
			}
			if err != nil {
				if len(got) != 0 {
					t.Fatalf("dispatch(%q) = %v after telling the sink %q", msg, err, got)
				}
				if !strings.HasPrefix(err.Error(), "BASE_BACKUP: ") {
					t.Fatalf("dispatch(%q) = %q: want it to name BASE_BACKUP", msg, err)
				}
				continue
			}
			if len(got) != 1 {
				t.Fatalf("dispatch(%q) told the sink %q, want one call", msg, got)
			}
			var want string
			switch body := msg[1:]; msg[0] {
			case 'n':
				name, rest, _ := bytes.Cut(body, []byte{0})
				loc, _, ok := bytes.Cut(rest, []byte{0})
				if !ok {
					t.Fatalf("dispatch accepted new-archive message %q without two C strings", msg)
				}
				want = fmt.Sprintf("n %q %q", name, loc)
			case 'd':
				want = fmt.Sprintf("d %q", body)
			case 'p':
				if len(body) != 8 {
					t.Fatalf("dispatch accepted progress message %q", msg)
				}
				want = fmt.Sprintf("p %d", int64(binary.BigEndian.Uint64(body)))
			case 'm':
				want = "m"
			default:
				t.Fatalf("dispatch accepted message type %q", msg[0])
			}
			if got[0] != want {
				t.Fatalf("dispatch(%q) told the sink %s, want %s", msg, got[0], want)
			}
		}
	})
}

// fuzzSigningKey is a fixed signing key for tests, so that the signed
// inputs in a fuzz corpus stay signed from one run to the next.
func fuzzSigningKey(tb testing.TB) *seal.SigningKey {
	seed := sha256.Sum256([]byte("pgward fuzz test signing key"))
	k, err := seal.ParseSigningKey([]byte("PGWARD-SIGNING-KEY-1" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(seed[:]) + "\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// FuzzReadInfo reads backup.json from a repository as List and Get do,
// with no signer trusted (mode 0), one signer required (1), or one signer
// with unsigned documents allowed (2). Whatever it accepts describes its
// own backup (parts under its prefix, a checksum each), is trusted only
// when signed, and lists (backup list --json) and reads back unchanged.
func FuzzReadInfo(f *testing.F) {
	const id = "20261121T225704Z"
	layout := catalog.Layout{Cluster: "main"}
	key := fuzzSigningKey(f)
	doc := `{
  "format": 1, "id": "20261121T225704Z", "label": "pgward 20261121T225704Z",
  "system_identifier": "7710744555416146008", "pg_version": 15,
  "start_lsn": "0/36000028", "stop_lsn": "0/36000138", "start_timeline": 1, "stop_timeline": 1,
  "start_time": "2026-11-21T22:57:04Z", "stop_time": "2026-11-21T22:57:08Z",
  "data_bytes": 353772544, "stored_bytes": 28354325, "encrypted": true,
  "archives": [{"name": "base.tar", "parts": [
    {"key": "main/basebackups/20261121T225704Z/base.tar.0000.zst.age", "bytes": 67108864, "stored_bytes": 3216815, "xxh3_128": "2b1e4c7d5f1a0e9c3b6d8f2a4c6e8a0b"}]},
    {"name": "16385.tar", "tablespace_location": "/srv/tbs", "parts": []}],
  "manifest": {"key": "main/basebackups/20261121T225704Z/backup_manifest.zst.age", "bytes": 190123, "stored_bytes": 17052, "xxh3_128": "ffeeddccbbaa99887766554433221100"}
}
`
	signed, err := key.SignDocument([]byte(doc), layout.BackupInfoKey(id))
	if err != nil {
		f.Fatal(err)
	}
	otherKey, err := key.SignDocument([]byte(doc), layout.BackupInfoKey("20261121T225705Z"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		doc,
		string(signed),
		string(otherKey),
		doc + `{"pgward-signature":"!!"}` + "\n",
		`{"format":1}`,
		`{"format":1} {"format":2}`,
		`{"format":2}`,
		`{"format":1,"id":"20261121T225704Z","archives":[{"name":"base.tar","parts":null}],"start_time":"2026-11-21T22:57:04+14:00",` +
			`"manifest":{"key":"main/basebackups/20261121T225704Z/backup_manifest","xxh3_128":"00000000000000000000000000000000"}}`,
		`{"format":1,"id":"20261121T225704Z","archives":[{"name":"base.tar","parts":[{"key":"main/basebackups/20261121T225704Z/../x"}]}]}`,
		`{"format":"1"}`,
		`{"format":1,"start_time":"9999-12-31T23:59:59.999999999-23:59"}`,
		``,
		`null`,
	} {
		for mode := range uint8(3) {
			f.Add([]byte(s), mode)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		ctx := context.Background()
		store := memory.New()
		if err := store.Put(ctx, layout.BackupInfoKey(id), bytes.NewReader(b), int64(len(b)), nil); err != nil {
			t.Fatal(err)
		}
		var trust *seal.Trust
		switch mode % 3 {
		case 1:
			trust = &seal.Trust{Signers: []seal.PublicKey{key.Public()}}
		case 2:
			trust = &seal.Trust{Signers: []seal.PublicKey{key.Public()}, AllowUnsigned: true}
		}
		info, err := readInfo(ctx, store, layout, id, trust)
		if err != nil {
			if !strings.Contains(err.Error(), id) {
				t.Fatalf("readInfo of %q: error %q does not name the backup", b, err)
			}
			return
		}
		if info.Format != catalog.BackupFormat || info.ID != id {
			t.Fatalf("readInfo of %q accepted format %d, id %q", b, info.Format, info.ID)
		}
		if info.Trusted != (trust != nil && seal.DocumentSigned(b)) || (mode%3 == 1 && !info.Trusted) {
			t.Fatalf("readInfo of %q with trust mode %d: trusted = %v", b, mode%3, info.Trusted)
		}
		prefix := layout.BackupPrefix(id)
		parts := []catalog.BackupPart{info.Manifest}
		names := map[string]bool{}
		for _, a := range info.Archives {
			if names[a.Name] || !validArchiveName(a.Name) || (a.Name == "base.tar" && a.Tablespace != "") {
				t.Fatalf("readInfo of %q accepted archive %q (tablespace %q)", b, a.Name, a.Tablespace)
			}
			names[a.Name] = true
			parts = append(parts, a.Parts...)
		}
		if !names["base.tar"] {
			t.Fatalf("readInfo of %q accepted a backup without base.tar", b)
		}
		for _, p := range parts {
			rest, ok := strings.CutPrefix(p.Key, prefix)
			if !ok || rest == "" || strings.ContainsAny(rest, "/\\") || strings.Contains(rest, "..") || len(p.Checksum) != 32 || p.Bytes < 0 {
				t.Fatalf("readInfo of %q accepted part %+v outside %s or without a checksum", b, p, prefix)
			}
		}
		out, err := json.Marshal(Listed{BackupInfo: info})
		if err != nil {
			t.Fatalf("readInfo of %q = %+v, which does not encode: %v", b, info, err)
		}
		var again Listed
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("backup.json %q listed as %q does not decode: %v", b, out, err)
		}
		if out2, err := json.Marshal(again); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("backup.json %q: listed as %q, then as %q (%v)", b, out, out2, err)
		}
	})
}
