// Package catalog owns the repository's key layout: where each cluster's
// WAL, history files and metadata live, and the cluster.json record that
// ties a repository directory to one PostgreSQL system.
package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/seal"
)

// DefaultCluster is the cluster name used when none is given.
const DefaultCluster = "main"

// ValidateClusterName checks a cluster name: 1–63 characters of letters,
// digits, '-', '_' and '.', not starting with '.' or '-'.
func ValidateClusterName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("invalid cluster name %q: want 1 to 63 characters", name)
	}
	for i, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' ||
			(i > 0 && (c == '-' || c == '.'))
		if !ok {
			return fmt.Errorf("invalid cluster name %q: use letters, digits, '-', '_' and '.', starting with a letter, digit or '_'", name)
		}
	}
	return nil
}

// Layout maps names to object keys for one cluster.
type Layout struct {
	Cluster string
}

// WALPrefix is the key prefix of the cluster's WAL objects.
func (l Layout) WALPrefix() string { return l.Cluster + "/wal/" }

// WALKey is the key of WAL file name (a segment, .partial, .history or
// .backup file) sealed with the given suffix.
func (l Layout) WALKey(name, suffix string) string { return l.WALPrefix() + name + suffix }

// ClusterInfoKey is the key of the cluster's cluster.json.
func (l Layout) ClusterInfoKey() string { return l.Cluster + "/cluster.json" }

// ClusterInfoFormat is the version of the cluster.json format.
const ClusterInfoFormat = 1

// ClusterInfo is cluster.json: written once, by the first push, and
// checked by every later one. It is stored unsealed: it holds nothing
// secret and monitoring reads it without a key.
type ClusterInfo struct {
	Format           int       `json:"format"`
	SystemIdentifier uint64    `json:"-"`
	PGVersion        int       `json:"pg_version"`
	WALSegmentSize   uint32    `json:"wal_segment_size"`
	CreatedAt        time.Time `json:"created_at"`
}

// The system identifier is written as a string: it is a 64-bit number
// that JSON tools (jq, JavaScript) would round.

// MarshalJSON implements json.Marshaler.
func (c ClusterInfo) MarshalJSON() ([]byte, error) {
	type plain ClusterInfo // without methods, to avoid recursion
	return json.Marshal(struct {
		plain
		SystemIdentifier string `json:"system_identifier"`
	}{plain(c), strconv.FormatUint(c.SystemIdentifier, 10)})
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *ClusterInfo) UnmarshalJSON(b []byte) error {
	type plain ClusterInfo
	var v struct {
		plain
		SystemIdentifier string `json:"system_identifier"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	id, err := strconv.ParseUint(v.SystemIdentifier, 10, 64)
	if err != nil {
		return fmt.Errorf("system_identifier %q: %w", v.SystemIdentifier, err)
	}
	*c = ClusterInfo(v.plain)
	c.SystemIdentifier = id
	if c.Format != ClusterInfoFormat {
		return fmt.Errorf("cluster.json format %d is not supported by this pgward (it reads format %d): upgrade pgward", c.Format, ClusterInfoFormat)
	}
	return nil
}

// ErrOtherSystem is returned (wrapped) when WAL from one PostgreSQL system
// meets a repository cluster that belongs to another.
var ErrOtherSystem = errors.New("WAL belongs to a different PostgreSQL system")

// ErrOtherSegmentSize is returned (wrapped) when WAL of another
// wal_segment_size meets a repository cluster.
var ErrOtherSegmentSize = errors.New("WAL segment size differs from the repository cluster's")

// Check reports whether WAL described by sysid and segSize may join this
// cluster.
func (c ClusterInfo) Check(cluster string, sysid uint64, segSize uint32) error {
	if c.SystemIdentifier != sysid {
		return fmt.Errorf("%w: the segment's system identifier is %d, but repository cluster %q belongs to system %d; "+
			"a restored copy must archive under its own --cluster name", ErrOtherSystem, sysid, cluster, c.SystemIdentifier)
	}
	if c.WALSegmentSize != segSize {
		return fmt.Errorf("%w: %d, but %d is recorded for cluster %q", ErrOtherSegmentSize, segSize, c.WALSegmentSize, cluster)
	}
	return nil
}

// BackupsPrefix is the key prefix of the cluster's base backups.
func (l Layout) BackupsPrefix() string { return l.Cluster + "/basebackups/" }

// BackupPrefix is the key prefix of one base backup.
func (l Layout) BackupPrefix(id string) string { return l.BackupsPrefix() + id + "/" }

// BackupPartKey is the key of part n of a backup's tar archive (its name
// as the server gives it, e.g. "base.tar" or "16385.tar").
func (l Layout) BackupPartKey(id, archive string, n int, suffix string) string {
	return fmt.Sprintf("%s%s.%04d%s", l.BackupPrefix(id), archive, n, suffix)
}

// BackupManifestKey is the key of the server's backup_manifest.
func (l Layout) BackupManifestKey(id, suffix string) string {
	return l.BackupPrefix(id) + "backup_manifest" + suffix
}

// BackupInfoKey is the key of backup.json, written last.
func (l Layout) BackupInfoKey(id string) string { return l.BackupPrefix(id) + "backup.json" }

// BackupPinKey marks a pinned backup, which retention keeps.
func (l Layout) BackupPinKey(id string) string { return l.BackupPrefix(id) + "pinned" }

// BackupLockKey is the lock that keeps two backups of one cluster apart.
func (l Layout) BackupLockKey() string { return l.BackupsPrefix() + "lock.json" }

// BackupFormat is the version of the backup.json format.
const BackupFormat = 1

// BackupInfo is backup.json. It is stored unsealed, like cluster.json:
// monitoring and retention read it without a key.
type BackupInfo struct {
	Format           int             `json:"format"`
	ID               string          `json:"id"`
	Label            string          `json:"label"`
	SystemIdentifier string          `json:"system_identifier"`
	PGVersion        int             `json:"pg_version"`
	StartLSN         string          `json:"start_lsn"`
	StopLSN          string          `json:"stop_lsn"`
	StartTimeline    uint32          `json:"start_timeline"`
	StopTimeline     uint32          `json:"stop_timeline"`
	StartTime        time.Time       `json:"start_time"`
	StopTime         time.Time       `json:"stop_time"`
	DataBytes        int64           `json:"data_bytes"`
	StoredBytes      int64           `json:"stored_bytes"`
	Encrypted        bool            `json:"encrypted"`
	Archives         []BackupArchive `json:"archives"`
	Manifest         BackupPart      `json:"manifest"`
	// Trusted says the backup.json was signed by a trusted signer (set
	// when it is read, never stored): only then may its tablespace
	// locations say where a restore writes.
	Trusted bool `json:"-"`
}

// BackupArchive is one tar archive of a backup: the main data directory
// ("base.tar") or one tablespace ("<oid>.tar").
type BackupArchive struct {
	Name       string `json:"name"`
	Tablespace string `json:"tablespace_location,omitempty"`
	// Compression is "zstd" when the server compressed the archive: its
	// parts' plaintext is then slices of one zstd stream of the tar.
	Compression string       `json:"compression,omitempty"`
	Parts       []BackupPart `json:"parts"`
}

// CompressionZstd marks an archive the server compressed with zstd.
const CompressionZstd = "zstd"

// Expect is what reading part p of the archive must find: a compressed
// archive's parts record their stream, not their plaintext.
func (a BackupArchive) Expect(p BackupPart) seal.Expect {
	kind := seal.KindBackupPart
	if a.Compression != "" {
		kind = seal.KindBackupStream
	}
	return seal.Expect{Key: p.Key, Kind: kind, Size: p.Bytes, Checksum: p.Checksum}
}

// BackupPart is one stored object: a slice of an archive, sealed alone.
type BackupPart struct {
	Key         string `json:"key"`
	Bytes       int64  `json:"bytes"`
	StoredBytes int64  `json:"stored_bytes"`
	Checksum    string `json:"xxh3_128"`
}

// DefaultRetentionWindow is the point-in-time recovery window: 7 days.
const DefaultRetentionWindow = 7 * 24 * time.Hour

// BackupSummary is what retention needs to know of a backup.
type BackupSummary struct {
	ID       string
	StopTime time.Time
	Pinned   bool
}

// KeepBackups returns the backups retention keeps at now: every backup
// that finished inside the window, the newest that finished before it
// (the base for the window's oldest second), and every pinned one.
func KeepBackups(backups []BackupSummary, now time.Time, window time.Duration) map[string]bool {
	keep := map[string]bool{}
	start := now.Add(-window)
	var base *BackupSummary
	for i, b := range backups {
		if b.Pinned || !b.StopTime.Before(start) {
			keep[b.ID] = true
		}
		if b.StopTime.Before(start) && (base == nil || b.StopTime.After(base.StopTime)) {
			base = &backups[i]
		}
	}
	if base != nil {
		keep[base.ID] = true
	}
	return keep
}

// GlobalsDumpDir is the directory of the globals dumps (roles,
// tablespaces) among the databases' directories. No database name maps to
// it: DumpDatabaseDir always follows '%' with two hex digits.
const GlobalsDumpDir = "%globals"

// DumpsPrefix is the key prefix of the cluster's logical dumps.
func (l Layout) DumpsPrefix() string { return l.Cluster + "/dumps/" }

// DumpDatabaseDir is the directory of a database's dumps: its name with
// every byte outside [A-Za-z0-9_.-], and a leading '.', written as %XX, so
// that any name (even "a/../b") is one safe key segment.
func DumpDatabaseDir(database string) string {
	var b strings.Builder
	for i := 0; i < len(database); i++ {
		c := database[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.' && i > 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// DumpPrefix is the key prefix of one dump: <cluster>/dumps/<dir>/<id>/.
func (l Layout) DumpPrefix(dir, id string) string { return l.DumpsPrefix() + dir + "/" + id + "/" }

// DumpInfoKey is the key of a dump's dump.json, written last.
func (l Layout) DumpInfoKey(dir, id string) string { return l.DumpPrefix(dir, id) + "dump.json" }

// ParseBackupInfo decodes backup id's backup.json and checks that it
// describes that backup and nothing else: its id, parts only under its
// own prefix, archive names PostgreSQL gives, and a checksum for every
// part (one without cannot be verified, so it cannot be restored).
func ParseBackupInfo(data []byte, l Layout, id string) (BackupInfo, error) {
	var info BackupInfo
	if err := json.Unmarshal(firstJSONValue(data), &info); err != nil {
		return BackupInfo{}, fmt.Errorf("backup.json: %w", err)
	}
	if info.Format != BackupFormat {
		return BackupInfo{}, fmt.Errorf("backup.json format %d is not supported by this pgward (it reads format %d)", info.Format, BackupFormat)
	}
	if info.ID != id {
		return BackupInfo{}, fmt.Errorf("backup.json describes backup %q, not %q: it was copied from another backup", info.ID, id)
	}
	prefix := l.BackupPrefix(id)
	checkPart := func(what string, p BackupPart) error {
		rest, ok := strings.CutPrefix(p.Key, prefix)
		if !ok || rest == "" || strings.ContainsAny(rest, "/\\") || strings.Contains(rest, "..") {
			return fmt.Errorf("backup.json: %s key %q is not inside backup %s", what, p.Key, id)
		}
		if p.Bytes < 0 || p.StoredBytes < 0 {
			return fmt.Errorf("backup.json: %s %s has a negative size", what, p.Key)
		}
		if len(p.Checksum) != 32 || strings.Trim(p.Checksum, "0123456789abcdef") != "" {
			return fmt.Errorf("backup.json: %s %s records no valid xxh3_128 checksum, so it cannot be verified", what, p.Key)
		}
		return nil
	}
	seen := map[string]bool{}
	for _, a := range info.Archives {
		stem, ok := strings.CutSuffix(a.Name, ".tar")
		if !ok || stem == "" || seen[a.Name] || (stem != "base" && strings.Trim(stem, "0123456789") != "") {
			return BackupInfo{}, fmt.Errorf("backup.json: unexpected archive name %q (want base.tar or <tablespace oid>.tar, once each)", a.Name)
		}
		seen[a.Name] = true
		if stem == "base" && a.Tablespace != "" {
			return BackupInfo{}, fmt.Errorf("backup.json: archive %s has tablespace location %q", a.Name, a.Tablespace)
		}
		if a.Compression != "" && a.Compression != CompressionZstd {
			return BackupInfo{}, fmt.Errorf("backup.json: archive %s has compression %q (want zstd or none): written by a newer pgward?", a.Name, a.Compression)
		}
		for _, p := range a.Parts {
			if err := checkPart("part", p); err != nil {
				return BackupInfo{}, err
			}
		}
	}
	if !seen["base.tar"] {
		return BackupInfo{}, errors.New("backup.json: no base.tar archive")
	}
	if err := checkPart("manifest", info.Manifest); err != nil {
		return BackupInfo{}, err
	}
	return info, nil
}

// firstJSONValue returns data up to the end of its first line that closes
// a JSON value: a signed document's signature line is not part of it.
func firstJSONValue(data []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return data // let Unmarshal name the error
	}
	return raw
}
