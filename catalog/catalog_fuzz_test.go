package catalog_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/pgward/pgward/catalog"
)

// clusterJSON is a cluster.json as pgward writes it (docs/format.md).
const clusterJSON = `{
  "format": 1,
  "pg_version": 15,
  "wal_segment_size": 16777216,
  "created_at": "2026-11-21T21:39:21.229497236Z",
  "system_identifier": "7710742314115400655"
}
`

// backupJSON is a backup.json as pgward writes it (docs/format.md), with
// a tablespace archive.
const backupJSON = `{
  "format": 1, "id": "20261121T225704Z", "label": "pgward 20261121T225704Z",
  "system_identifier": "7710744555416146008", "pg_version": 15,
  "start_lsn": "0/36000028", "stop_lsn": "0/36000138", "start_timeline": 1, "stop_timeline": 1,
  "start_time": "2026-11-21T22:57:04Z", "stop_time": "2026-11-21T22:57:08Z",
  "data_bytes": 353772544, "stored_bytes": 28354325, "encrypted": true,
  "archives": [{"name": "base.tar", "parts": [
    {"key": "main/basebackups/20261121T225704Z/base.tar.0000.zst.age", "bytes": 67108864, "stored_bytes": 3216815, "xxh3_128": "2b1e4c7d5f1a0e9c3b6d8f2a4c6e8a0b"}]},
    {"name": "16385.tar", "tablespace_location": "/srv/tbs", "parts": [
    {"key": "main/basebackups/20261121T225704Z/16385.tar.0000.zst.age", "bytes": 1536, "stored_bytes": 412, "xxh3_128": "00112233445566778899aabbccddeeff"}]}],
  "manifest": {"key": "main/basebackups/20261121T225704Z/backup_manifest.zst.age", "bytes": 190123, "stored_bytes": 17052, "xxh3_128": "ffeeddccbbaa99887766554433221100"}
}
`

// FuzzClusterInfo decodes cluster.json. Whatever decodes is format 1 and
// survives a write and a read unchanged.
func FuzzClusterInfo(f *testing.F) {
	for _, s := range []string{
		clusterJSON,
		`{"format":1,"system_identifier":"18446744073709551615","created_at":"0001-01-01T00:00:00Z"}`,
		`{"format":1,"system_identifier":"1","created_at":"2026-11-21T21:39:21+05:30"}`,
		`{"format":2,"system_identifier":"1"}`,
		`{"format":1,"system_identifier":"-1"}`,
		`{"format":1,"system_identifier":18446744073709551615}`,
		`{"format":1,"system_identifier":"1","wal_segment_size":-1}`,
		`{"format":1,"system_identifier":"1","pg_version":1e400}`,
		`{"format":1}`,
		`[]`,
		`null`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var info catalog.ClusterInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return
		}
		if info.Format != catalog.ClusterInfoFormat {
			t.Fatalf("cluster.json %q decoded with format %d", b, info.Format)
		}
		out, err := json.Marshal(info)
		if err != nil {
			t.Fatalf("cluster.json %q decoded to %+v, which does not encode: %v", b, info, err)
		}
		var again catalog.ClusterInfo
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("cluster.json %q rewritten as %q does not decode: %v", b, out, err)
		}
		if again.Format != info.Format || again.SystemIdentifier != info.SystemIdentifier || again.PGVersion != info.PGVersion ||
			again.WALSegmentSize != info.WALSegmentSize || !again.CreatedAt.Equal(info.CreatedAt) {
			t.Fatalf("cluster.json %q: %+v rewritten as %q reads back as %+v", b, info, out, again)
		}
	})
}

// FuzzBackupInfo decodes backup.json as catalog.BackupInfo. Whatever
// decodes encodes, and reads back to the same bytes.
func FuzzBackupInfo(f *testing.F) {
	for _, s := range []string{
		backupJSON,
		`{"format":1,"archives":[{"name":"base.tar","parts":[]}],"manifest":{}}`,
		`{"format":1,"archives":null,"start_time":"2026-11-21T22:57:04.123456789+14:00"}`,
		`{"format":1,"data_bytes":-1,"stored_bytes":9223372036854775807}`,
		`{"format":1,"start_timeline":4294967296}`,
		`{"format":1,"archives":[{"name":"../x.tar","tablespace_location":"/root/.ssh"}]}`,
		`{"format":1,"label":"\u0000\ud800"}`,
		`{"format":1}garbage`,
		`{}`,
		``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var info catalog.BackupInfo
		if err := json.Unmarshal(b, &info); err != nil {
			return
		}
		out, err := json.Marshal(info)
		if err != nil {
			t.Fatalf("backup.json %q decoded to %+v, which does not encode: %v", b, info, err)
		}
		var again catalog.BackupInfo
		if err := json.Unmarshal(out, &again); err != nil {
			t.Fatalf("backup.json %q rewritten as %q does not decode: %v", b, out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("backup.json %q: written as %q, then as %q (%v)", b, out, out2, err)
		}
	})
}
