package dump

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage/memory"
)

// dumpJSON is a dump.json as pgward writes it (docs/format.md).
const dumpJSON = `{
  "format": 1, "id": "20261122T000012Z", "kind": "database", "database": "shop", "owner": "shop_owner",
  "start_time": "2026-11-22T00:00:12.3Z", "end_time": "2026-11-22T00:01:40.1Z",
  "object": "dump.pgdump.zst.age", "data_bytes": 1093124171, "stored_bytes": 214337107,
  "checksum": "00112233445566778899aabbccddeeff", "pg_dump_version": "15.18", "server_version": "15.18 (Debian 15.18-0+deb12u1)",
  "tables": 4, "rows": 6500055, "row_estimate": 6500000, "tables_object": "tables.json.zst.age",
  "recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"], "attempts": 1, "replay_paused": true
}
`

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

// FuzzDumpInfo reads dump.json from where a listing finds it (dir and id
// are the key's two segments), with no signer trusted (mode 0), one
// signer required (1), or one signer with unsigned documents allowed (2).
// Whatever read accepts describes the dump it sits in, names objects
// inside that dump's prefix, is signed when a signature is required, and
// writes back to what reads the same.
func FuzzDumpInfo(f *testing.F) {
	signer := fuzzSigningKey(f)
	layout := catalog.Layout{Cluster: "main"}
	signed, err := signer.SignDocument([]byte(dumpJSON), layout.DumpInfoKey("shop", "20261122T000012Z"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ dir, id, json string }{
		{"shop", "20261122T000012Z", dumpJSON},
		{"shop", "20261122T000012Z", string(signed)},
		{"shop", "20261122T000013Z", string(signed)}, // signed for another key
		{"shop", "20261122T000012Z", dumpJSON + `{"pgward-signature":"!!"}` + "\n"},
		{"shop", "20261122T000012Z", `{"pgward-signature":"AAAA"}`},
		{catalog.GlobalsDumpDir, "20261122T000012Z", `{"format":1,"id":"20261122T000012Z","kind":"globals","object":"globals.sql.zst"}`},
		{"a%2Fb", "1", `{"format":1,"id":"1","kind":"database","database":"a/b","object":"dump.pgdump.zst"}`},
		{"shop", "1", `{"format":1,"id":"1","kind":"database","database":"shop","object":"../x"}`},
		{"shop", "1", `{"format":1,"id":"1","kind":"database","database":"shop","object":"x","tables_object":"a\\b"}`},
		{"..", "..", `{"format":1,"id":"..","kind":"database","database":"..","object":"x"}`},
		{"shop", "1", `{"format":2}`},
		{"shop", "1", ``},
	} {
		for mode := range uint8(3) {
			f.Add(s.dir, s.id, []byte(s.json), mode)
		}
	}
	f.Fuzz(func(t *testing.T, dir, id string, b []byte, mode uint8) {
		// List splits keys at '/': each of dir and id is one segment.
		if dir == "" || id == "" || strings.Contains(dir, "/") || strings.Contains(id, "/") {
			return
		}
		ctx := context.Background()
		c := &Catalog{Store: memory.New(), Layout: layout}
		switch mode % 3 {
		case 1:
			c.Trust = &seal.Trust{Signers: []seal.PublicKey{signer.Public()}}
		case 2:
			c.Trust = &seal.Trust{Signers: []seal.PublicKey{signer.Public()}, AllowUnsigned: true}
		}
		key := c.Layout.DumpInfoKey(dir, id)
		if err := c.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), nil); err != nil {
			return // a key no backend stores ("..")
		}
		info, err := c.read(ctx, key)
		if err != nil {
			if info != nil || !strings.Contains(err.Error(), key) {
				t.Fatalf("read(%q) of %q = %+v, %v: want no info and an error naming the key", key, b, info, err)
			}
			return
		}
		if mode%3 == 1 && !seal.DocumentSigned(b) {
			t.Fatalf("read(%q) of %q accepted an unsigned document from a repository that requires signatures", key, b)
		}
		if info.Format != InfoFormat || info.ID != id || info.Dir() != dir || (info.Kind != KindDatabase && info.Kind != KindGlobals) {
			t.Fatalf("read(%q) of %q accepted %+v", key, b, info)
		}
		prefix := c.Layout.DumpPrefix(dir, id)
		objects := []string{info.Object}
		if info.TablesObject != "" {
			objects = append(objects, info.TablesObject)
		}
		for _, obj := range objects {
			if strings.ContainsAny(obj, "/\\") || obj == "." || obj == ".." || obj == "" {
				t.Fatalf("read(%q) of %q accepted object %q: key %q leaves %q", key, b, obj, prefix+obj, prefix)
			}
		}
		out, err := marshalInfo(info)
		if err != nil {
			t.Fatalf("read(%q) of %q = %+v, which does not encode: %v", key, b, info, err)
		}
		if err := c.Store.Put(ctx, key, bytes.NewReader(out), int64(len(out)), nil); err != nil {
			t.Fatal(err)
		}
		c.Trust = nil // what marshalInfo writes is unsigned
		again, err := c.read(ctx, key)
		if err != nil {
			t.Fatalf("dump.json %q rewritten as %q does not read: %v", b, out, err)
		}
		if out2, err := marshalInfo(again); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("dump.json %q: written as %q, then as %q (%v)", b, out, out2, err)
		}
		var v map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("dump.json written as %q is not JSON: %v", out, err)
		}
	})
}
