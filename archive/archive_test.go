package archive_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/zeebo/xxh3"

	"github.com/pgward/pgward/archive"
	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/storage/memory"
	"github.com/pgward/pgward/storage/storagetest"
	"github.com/pgward/pgward/wal"
)

const (
	testSegSize = 1 << 20
	testSysID   = uint64(7312345678901234567)
	otherSysID  = uint64(7399999999999999999)
	// baseSeg is chosen so that the segments after it cross a log ID
	// boundary (…00000000 00000FFF → …00000001 00000000 at 1 MiB).
	baseSeg = uint64(0xFFE)
)

var errBoom = errors.New("boom: injected storage failure")

// segSpec describes a fake WAL segment.
type segSpec struct {
	tli     uint32
	segno   uint64 // the segment the header claims (pageaddr = segno*segsize)
	sysid   uint64
	size    uint32 // segment size written in the header; testSegSize if 0
	variant int    // changes the body, not the header
}

// segmentData builds a valid-looking WAL segment: a long page header and a
// compressible body that differs per segment, system and variant.
func segmentData(s segSpec) []byte {
	if s.size == 0 {
		s.size = testSegSize
	}
	if s.tli == 0 {
		s.tli = 1
	}
	data := make([]byte, s.size)
	le := binary.LittleEndian
	le.PutUint16(data[0:], 0xD110) // PostgreSQL 15
	le.PutUint16(data[2:], 0x0002) // XLP_LONG_HEADER
	le.PutUint32(data[4:], s.tli)
	le.PutUint64(data[8:], s.segno*uint64(s.size))
	le.PutUint32(data[16:], 0)
	le.PutUint64(data[24:], s.sysid)
	le.PutUint32(data[32:], s.size)
	le.PutUint32(data[36:], 8192)
	line := fmt.Appendf(nil, "tli=%d segment=%d system=%d variant=%d | ", s.tli, s.segno, s.sysid, s.variant)
	for i := wal.LongHeaderSize; i < len(data); i += len(line) {
		copy(data[i:], line)
	}
	return data
}

// segName is the file name of segment segno on timeline 1 at 1 MiB.
func segName(segno uint64) string { return wal.SegmentName(1, segno, testSegSize) }

// writeFile writes data to dir/name and returns the path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeSegment writes the segment s under its own name (timeline 1) into
// a fresh directory and returns path and content.
func writeSegment(t *testing.T, s segSpec) (string, []byte) {
	t.Helper()
	data := segmentData(s)
	tli := s.tli
	if tli == 0 {
		tli = 1
	}
	return writeFile(t, t.TempDir(), wal.SegmentName(tli, s.segno, testSegSize), data), data
}

type keys struct {
	id       *age.X25519Identity
	sealer   *seal.Sealer // encrypting
	plain    *seal.Sealer // compression only
	opener   *seal.Opener
	noOpener *seal.Opener // no identity
}

func newKeys(t *testing.T) keys {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return keys{
		id:       id,
		sealer:   seal.NewSealer([]age.Recipient{id.Recipient()}, seal.LevelFastest, 2),
		plain:    seal.NewSealer(nil, seal.LevelFastest, 2),
		opener:   seal.NewOpener([]age.Identity{id}),
		noOpener: seal.NewOpener(nil),
	}
}

var fixedNow = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

func newArchive(store storage.Backend, cluster string, k keys) *archive.Archive {
	return &archive.Archive{
		Store:  store,
		Layout: catalog.Layout{Cluster: cluster},
		Sealer: k.sealer,
		Opener: k.opener,
		Now:    func() time.Time { return fixedNow },
	}
}

func checksumOf(data []byte) string {
	b := xxh3.Hash128(data).Bytes()
	return hex.EncodeToString(b[:])
}

// getObject returns the stored bytes and info of key.
func getObject(t *testing.T, store storage.Backend, key string) ([]byte, storage.ObjectInfo) {
	t.Helper()
	rc, info, err := store.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, info
}

// listKeys returns every key in store under prefix.
func listKeys(t *testing.T, store storage.Backend, prefix string) []string {
	t.Helper()
	var out []string
	err := store.List(t.Context(), prefix, func(o storage.ObjectInfo) error {
		out = append(out, o.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return out
}

// assertNoWALObject fails if name is stored under either suffix.
func assertNoWALObject(t *testing.T, store storage.Backend, l catalog.Layout, name string) {
	t.Helper()
	for _, suf := range []string{seal.SuffixEncrypted, seal.SuffixPlain} {
		key := l.WALKey(name, suf)
		if _, err := store.Stat(t.Context(), key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(%s) = %v, want ErrNotExist", key, err)
		}
	}
}

// dirNames lists the names in dir (nil when it does not exist).
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// spoolSegments lists the non-dot files of a spool directory.
func spoolSegments(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, n := range dirNames(t, dir) {
		if !strings.HasPrefix(n, ".") {
			out = append(out, n)
		}
	}
	return out
}

func assertFile(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the expected %d bytes", path, len(got), len(want))
	}
}

func mustPush(t *testing.T, a *archive.Archive, path string, want archive.PushResult) {
	t.Helper()
	got, err := a.Push(t.Context(), path)
	if err != nil {
		t.Fatalf("Push(%s): %v", filepath.Base(path), err)
	}
	if got != want {
		t.Fatalf("Push(%s) = %v, want %v", filepath.Base(path), got, want)
	}
}

func TestPushStoresSealedObject(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	path, data := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	name := filepath.Base(path)

	mustPush(t, a, path, archive.Stored)

	key := "main/wal/" + name + ".zst.age"
	if got := a.Layout.WALKey(name, seal.SuffixEncrypted); got != key {
		t.Fatalf("WALKey = %q, want %q", got, key)
	}
	sealed, info := getObject(t, store, key)
	if got, want := info.Metadata[archive.MetaChecksum], checksumOf(data); got != want {
		t.Errorf("metadata %s = %q, want %q", archive.MetaChecksum, got, want)
	}
	if got, want := info.Metadata[archive.MetaSize], strconv.Itoa(len(data)); got != want {
		t.Errorf("metadata %s = %q, want %q", archive.MetaSize, got, want)
	}
	if !bytes.HasPrefix(sealed, []byte("age-encryption.org/")) {
		t.Errorf("stored object does not start with an age header: %q", sealed[:min(len(sealed), 32)])
	}
	if len(sealed) >= len(data)/4 {
		t.Errorf("stored object is %d bytes for a %d-byte compressible segment", len(sealed), len(data))
	}
	if got := listKeys(t, store, "main/wal/"); !slices.Equal(got, []string{key}) {
		t.Errorf("WAL keys = %q, want only %q", got, key)
	}

	// The sealed object opens to the original segment.
	r, err := k.opener.NewReader(bytes.NewReader(sealed), seal.Expect{Key: key, Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, data) {
		t.Error("unsealed object differs from the pushed segment")
	}
}

func TestPushSameContentIsAlreadyStored(t *testing.T) {
	k := newKeys(t)
	faulty := &storagetest.Faulty{Backend: memory.New()}
	a := newArchive(faulty, "main", k)
	path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, path, archive.Stored)

	walPrefix := a.Layout.WALPrefix()
	faulty.PutErr = func(key string) error {
		if strings.HasPrefix(key, walPrefix) {
			t.Errorf("second push of identical content called Put(%s)", key)
			return errBoom
		}
		return nil
	}
	mustPush(t, a, path, archive.AlreadyStored)

	// A copy of the same content elsewhere (archive_command retries from
	// another path) is recognised too.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mustPush(t, a, writeFile(t, t.TempDir(), filepath.Base(path), data), archive.AlreadyStored)
}

func TestPushConflictLeavesObjectAlone(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, path, archive.Stored)
	key := a.Layout.WALKey(filepath.Base(path), seal.SuffixEncrypted)
	before, beforeInfo := getObject(t, store, key)

	other, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID, variant: 1})
	res, err := a.Push(t.Context(), other)
	if !errors.Is(err, archive.ErrConflict) {
		t.Fatalf("Push(different content) = %v, %v; want an error wrapping ErrConflict", res, err)
	}
	after, afterInfo := getObject(t, store, key)
	if !bytes.Equal(before, after) {
		t.Error("the stored object changed after a conflicting push")
	}
	if !afterInfo.ModTime.Equal(beforeInfo.ModTime) || afterInfo.Metadata[archive.MetaChecksum] != beforeInfo.Metadata[archive.MetaChecksum] {
		t.Errorf("object info changed: before %+v, after %+v", beforeInfo, afterInfo)
	}
}

func TestPushConflictWithoutChecksum(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	key := a.Layout.WALKey(filepath.Base(path), seal.SuffixEncrypted)
	junk := []byte("stored by something else")
	if err := store.Put(t.Context(), key, bytes.NewReader(junk), int64(len(junk)), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(t.Context(), path); !errors.Is(err, archive.ErrConflict) {
		t.Fatalf("Push over an object without checksum: %v, want ErrConflict", err)
	}
	if got, _ := getObject(t, store, key); !bytes.Equal(got, junk) {
		t.Error("the object without checksum was overwritten")
	}
}

func TestPushCreatesClusterInfo(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	if _, err := a.ClusterInfo(t.Context()); !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("ClusterInfo before any push: %v, want ErrNotExist", err)
	}
	path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, path, archive.Stored)

	raw, _ := getObject(t, store, "main/cluster.json")
	var info catalog.ClusterInfo
	if err := json.Unmarshal(raw, &info); err != nil {
		t.Fatalf("cluster.json: %v\n%s", err, raw)
	}
	want := catalog.ClusterInfo{
		Format: catalog.ClusterInfoFormat, SystemIdentifier: testSysID,
		PGVersion: 15, WALSegmentSize: testSegSize, CreatedAt: fixedNow,
	}
	if info.Format != want.Format || info.SystemIdentifier != want.SystemIdentifier ||
		info.PGVersion != want.PGVersion || info.WALSegmentSize != want.WALSegmentSize || !info.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("cluster.json = %+v, want %+v", info, want)
	}
	// The 64-bit identifier is written as a string so JSON tools keep it exact.
	if !bytes.Contains(raw, []byte(`"system_identifier": "`+strconv.FormatUint(testSysID, 10)+`"`)) {
		t.Errorf("cluster.json does not hold the system identifier as a string:\n%s", raw)
	}
	got, err := a.ClusterInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.SystemIdentifier != testSysID || got.WALSegmentSize != testSegSize || got.PGVersion != 15 {
		t.Errorf("ClusterInfo() = %+v", got)
	}

	// A later segment of the same system is accepted and leaves
	// cluster.json as it was.
	next, _ := writeSegment(t, segSpec{segno: baseSeg + 1, sysid: testSysID})
	a.Now = func() time.Time { return fixedNow.Add(time.Hour) }
	mustPush(t, a, next, archive.Stored)
	if raw2, _ := getObject(t, store, "main/cluster.json"); !bytes.Equal(raw, raw2) {
		t.Errorf("cluster.json rewritten by a later push:\n%s\nthen\n%s", raw, raw2)
	}
}

func TestPushOtherSystemRefused(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	first, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, first, archive.Stored)

	for _, segno := range []uint64{baseSeg, baseSeg + 1} { // same name as a stored one, and a new one
		t.Run(segName(segno), func(t *testing.T) {
			path, data := writeSegment(t, segSpec{segno: segno, sysid: otherSysID})
			name := filepath.Base(path)
			if segno == baseSeg {
				// Same name, different content: the conflict is found first.
				if _, err := a.Push(t.Context(), path); err == nil {
					t.Fatal("Push of another system's segment succeeded")
				}
				return
			}
			res, err := a.Push(t.Context(), path)
			if !errors.Is(err, catalog.ErrOtherSystem) {
				t.Fatalf("Push(other system) = %v, %v; want an error wrapping catalog.ErrOtherSystem", res, err)
			}
			assertNoWALObject(t, store, a.Layout, name)

			// Under its own cluster name the other system is welcome.
			b := newArchive(store, "restored", k)
			mustPush(t, b, path, archive.Stored)
			info, err := b.ClusterInfo(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if info.SystemIdentifier != otherSysID {
				t.Errorf("restored/cluster.json system identifier = %d, want %d", info.SystemIdentifier, otherSysID)
			}
			dest := filepath.Join(t.TempDir(), name)
			if err := b.Fetch(t.Context(), name, dest); err != nil {
				t.Fatal(err)
			}
			assertFile(t, dest, data)
			// The first cluster is untouched.
			if got, err := a.ClusterInfo(t.Context()); err != nil || got.SystemIdentifier != testSysID {
				t.Errorf("main/cluster.json = %+v, %v", got, err)
			}
			assertNoWALObject(t, store, a.Layout, name)
		})
	}
}

func TestPushOtherSegmentSizeRefused(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	first, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, first, archive.Stored)

	// A 2 MiB segment of the same system: the name is computed for 2 MiB.
	data := segmentData(segSpec{segno: 3, sysid: testSysID, size: 2 << 20})
	name := wal.SegmentName(1, 3, 2<<20)
	path := writeFile(t, t.TempDir(), name, data)
	if _, err := a.Push(t.Context(), path); err == nil || !strings.Contains(err.Error(), "segment size") {
		t.Fatalf("Push(2 MiB segment into a 1 MiB cluster) = %v, want a segment size error", err)
	}
	assertNoWALObject(t, store, a.Layout, name)
}

func TestPushRejectsBadFiles(t *testing.T) {
	good := segmentData(segSpec{segno: baseSeg, sysid: testSysID})
	tests := []struct {
		name    string // file name
		data    []byte
		wantIs  error  // if set, errors.Is must hold
		wantMsg string // if set, the message must contain one of these ("|"-separated)
	}{
		{
			name:    segName(baseSeg + 1), // header says baseSeg
			data:    good,
			wantMsg: "does not match",
		},
		{
			name:    segName(baseSeg),
			data:    good[:100], // a valid header, then cut short
			wantMsg: "incomplete|not a WAL segment",
		},
		{
			name:    segName(baseSeg),
			data:    good[:testSegSize-1],
			wantMsg: "incomplete",
		},
		{
			name:   segName(baseSeg),
			data:   good[:10], // not even a header
			wantIs: wal.ErrNotSegment,
		},
		{
			name:   segName(baseSeg),
			data:   nil,
			wantIs: wal.ErrNotSegment,
		},
		{
			name:   segName(baseSeg),
			data:   bytes.Repeat([]byte("not WAL at all\n"), testSegSize/15+1)[:testSegSize],
			wantIs: wal.ErrNotSegment,
		},
		{
			name:   "foo",
			data:   good,
			wantIs: wal.ErrNotWALName,
		},
		{
			name:   strings.ToLower(segName(baseSeg)),
			data:   good,
			wantIs: wal.ErrNotWALName,
		},
		{
			name:   segName(baseSeg) + ".zst",
			data:   good,
			wantIs: wal.ErrNotWALName,
		},
	}
	k := newKeys(t)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.name, len(tt.data)), func(t *testing.T) {
			store := memory.New()
			a := newArchive(store, "main", k)
			path := writeFile(t, t.TempDir(), tt.name, tt.data)
			res, err := a.Push(t.Context(), path)
			if err == nil {
				t.Fatalf("Push = %v, want an error", res)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Push error %q does not wrap %v", err, tt.wantIs)
			}
			if tt.wantMsg != "" {
				found := false
				for _, m := range strings.Split(tt.wantMsg, "|") {
					found = found || strings.Contains(err.Error(), m)
				}
				if !found {
					t.Errorf("Push error %q does not say %q", err, tt.wantMsg)
				}
			}
			if keys := listKeys(t, store, ""); len(keys) != 0 {
				t.Errorf("a refused push stored %q", keys)
			}
		})
	}
}

func TestPushDirectoryRefused(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	dir := filepath.Join(t.TempDir(), segName(baseSeg))
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Push(t.Context(), dir); err == nil {
		t.Fatal("Push(directory) succeeded")
	}
	if _, err := a.Push(t.Context(), filepath.Join(t.TempDir(), segName(baseSeg))); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Push(missing file) = %v, want os.ErrNotExist", err)
	}
	if keys := listKeys(t, store, ""); len(keys) != 0 {
		t.Errorf("stored %q", keys)
	}
}

func TestPushFetchHistoryFile(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	content := []byte("1\t0/9000000\tno recovery target specified\n\n# arbitrary text\n")
	name := "00000002.history"
	path := writeFile(t, t.TempDir(), name, content)

	mustPush(t, a, path, archive.Stored)
	if _, err := store.Stat(t.Context(), a.Layout.ClusterInfoKey()); !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("pushing a history file created cluster.json (Stat: %v)", err)
	}
	_, info := getObject(t, store, a.Layout.WALKey(name, seal.SuffixEncrypted))
	if got, want := info.Metadata[archive.MetaSize], strconv.Itoa(len(content)); got != want {
		t.Errorf("size metadata = %q, want %q", got, want)
	}
	mustPush(t, a, path, archive.AlreadyStored)

	dest := filepath.Join(t.TempDir(), "RECOVERYHISTORY")
	if err := a.Fetch(t.Context(), name, dest); err != nil {
		t.Fatal(err)
	}
	assertFile(t, dest, content)
}

// TestPushFetchLongHistoryFile round-trips a history file of many
// timelines, and refuses one larger than PostgreSQL could have written.
func TestPushFetchLongHistoryFile(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	history := func(n int) []byte {
		var buf bytes.Buffer
		for i := 0; i < n; i++ {
			fmt.Fprintf(&buf, "%d\t%X/%08X\tline %d\n", i+1, i, i*16, i)
		}
		return buf.Bytes()
	}
	content := history(20000)
	name := fmt.Sprintf("%08X.history", 20001)
	path := writeFile(t, t.TempDir(), name, content)
	mustPush(t, a, path, archive.Stored)
	dest := filepath.Join(t.TempDir(), name)
	if err := a.Fetch(t.Context(), name, dest); err != nil {
		t.Fatal(err)
	}
	assertFile(t, dest, content)

	huge := history(40000)
	name = fmt.Sprintf("%08X.history", 40001)
	_, err := a.Push(t.Context(), writeFile(t, t.TempDir(), name, huge))
	if err == nil || !strings.Contains(err.Error(), "is not one PostgreSQL wrote") {
		t.Fatalf("Push of a %d-byte history file: %v, want a refusal", len(huge), err)
	}
}

// TestPushRefusesInvalidHistoryFiles: a stored history file PostgreSQL
// cannot read ends every later recovery, and pushing the right one could
// not replace it. Nothing is stored.
func TestPushRefusesInvalidHistoryFiles(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	for _, tc := range []struct{ name, content, want string }{
		{"00000003.history", "", "no timeline entries"},
		{"00000002.history", "junk\n", "line 1"},
		{"00000002.history", "2\t0/3000000\tself\n", "line 1"},
		{"00000003.history", "2\t0/5000000\tx\n1\t0/3000000\ty\n", "line 2"},
	} {
		_, err := a.Push(t.Context(), writeFile(t, t.TempDir(), tc.name, []byte(tc.content)))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not storing it") {
			t.Errorf("Push(%s %q) = %v, want a refusal naming %q", tc.name, tc.content, err, tc.want)
		}
	}
	if got := listKeys(t, store, "main/wal/"); len(got) > 0 {
		t.Errorf("refused history files were stored: %q", got)
	}
}

func TestPushPutFails(t *testing.T) {
	tests := []struct {
		name string
		fail func(l catalog.Layout, key string) bool
	}{
		{"wal object", func(l catalog.Layout, key string) bool { return strings.HasPrefix(key, l.WALPrefix()) }},
		{"every put", func(catalog.Layout, string) bool { return true }},
		{"cluster.json", func(l catalog.Layout, key string) bool { return key == l.ClusterInfoKey() }},
	}
	k := newKeys(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faulty := &storagetest.Faulty{Backend: memory.New()}
			a := newArchive(faulty, "main", k)
			faulty.PutErr = func(key string) error {
				if tt.fail(a.Layout, key) {
					return errBoom
				}
				return nil
			}
			path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
			res, err := a.Push(t.Context(), path)
			if !errors.Is(err, errBoom) {
				t.Fatalf("Push = %v, %v; want an error wrapping the Put failure", res, err)
			}
			assertNoWALObject(t, faulty, a.Layout, filepath.Base(path))

			// Once the backend recovers, the retry stores the segment.
			faulty.PutErr = nil
			mustPush(t, a, path, archive.Stored)
		})
	}
}

func TestPushStatFails(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name   string
		suffix string // the WAL key whose Stat fails
	}{
		{"own suffix", seal.SuffixEncrypted},
		{"other suffix", seal.SuffixPlain},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faulty := &storagetest.Faulty{Backend: memory.New()}
			a := newArchive(faulty, "main", k)
			path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
			failKey := a.Layout.WALKey(filepath.Base(path), tt.suffix)
			faulty.StatErr = func(key string) error {
				if key == failKey {
					return errBoom
				}
				return nil
			}
			faulty.PutErr = func(key string) error {
				t.Errorf("Put(%s) called although Stat failed", key)
				return nil
			}
			res, err := a.Push(t.Context(), path)
			if !errors.Is(err, errBoom) {
				t.Fatalf("Push = %v, %v; want an error wrapping the Stat failure", res, err)
			}
			if keys := listKeys(t, faulty, ""); len(keys) != 0 {
				t.Errorf("stored %q after a Stat failure", keys)
			}
		})
	}
}

func TestPushClusterInfoReadFails(t *testing.T) {
	k := newKeys(t)
	faulty := &storagetest.Faulty{Backend: memory.New()}
	a := newArchive(faulty, "main", k)
	first, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, first, archive.Stored)
	raw, _ := getObject(t, faulty, a.Layout.ClusterInfoKey())

	faulty.GetErr = func(key string) error {
		if key == a.Layout.ClusterInfoKey() {
			return errBoom
		}
		return nil
	}
	path, _ := writeSegment(t, segSpec{segno: baseSeg + 1, sysid: otherSysID})
	if _, err := a.Push(t.Context(), path); !errors.Is(err, errBoom) {
		t.Fatalf("Push with unreadable cluster.json = %v, want errBoom", err)
	}
	assertNoWALObject(t, faulty, a.Layout, filepath.Base(path))
	faulty.GetErr = nil
	if got, _ := getObject(t, faulty, a.Layout.ClusterInfoKey()); !bytes.Equal(got, raw) {
		t.Error("cluster.json was rewritten when it could not be read")
	}
}

func TestPushOtherSuffix(t *testing.T) {
	k := newKeys(t)
	tests := []struct {
		name          string
		first, second *seal.Sealer
		firstSuffix   string
	}{
		{"plain then encrypted", k.plain, k.sealer, seal.SuffixPlain},
		{"encrypted then plain", k.sealer, k.plain, seal.SuffixEncrypted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.New()
			a := newArchive(store, "main", k)
			path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
			name := filepath.Base(path)
			a.Sealer = tt.first
			mustPush(t, a, path, archive.Stored)
			want := []string{a.Layout.WALKey(name, tt.firstSuffix)}
			if got := listKeys(t, store, a.Layout.WALPrefix()); !slices.Equal(got, want) {
				t.Fatalf("after first push: keys %q, want %q", got, want)
			}
			before, _ := getObject(t, store, want[0])

			a.Sealer = tt.second
			mustPush(t, a, path, archive.AlreadyStored)

			other, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID, variant: 7})
			if _, err := a.Push(t.Context(), other); !errors.Is(err, archive.ErrConflict) {
				t.Fatalf("Push(different content, other suffix) = %v, want ErrConflict", err)
			}
			if got := listKeys(t, store, a.Layout.WALPrefix()); !slices.Equal(got, want) {
				t.Errorf("after second pushes: keys %q, want %q", got, want)
			}
			if after, _ := getObject(t, store, want[0]); !bytes.Equal(before, after) {
				t.Error("the stored object changed")
			}
		})
	}
}

func TestFetchRoundTrip(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	path, data := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	name := filepath.Base(path)
	mustPush(t, a, path, archive.Stored)

	dir := t.TempDir()
	dest := filepath.Join(dir, "RECOVERYXLOG")
	// restore_command may be asked to overwrite a file left from before.
	writeFile(t, dir, "RECOVERYXLOG", []byte("stale"))
	if err := a.Fetch(t.Context(), name, dest); err != nil {
		t.Fatal(err)
	}
	assertFile(t, dest, data)
	if got := dirNames(t, dir); !slices.Equal(got, []string{"RECOVERYXLOG"}) {
		t.Errorf("dest directory holds %q, want only RECOVERYXLOG", got)
	}
}

func TestFetchNotFound(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	pushSegments(t, a, baseSeg-1, baseSeg-1) // the cluster exists
	dir := t.TempDir()
	dest := filepath.Join(dir, "RECOVERYXLOG")
	err := a.Fetch(t.Context(), segName(baseSeg), dest)
	if !errors.Is(err, archive.ErrNotFound) || !errors.Is(err, storage.ErrNotExist) {
		t.Fatalf("Fetch(missing) = %v, want ErrNotFound wrapping storage.ErrNotExist", err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("dest directory holds %q", got)
	}
}

// A repository without the cluster (wrong bucket, prefix or --cluster) is
// an error, never "not found": that would end recovery early.
func TestFetchNoCluster(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	dir := t.TempDir()
	err := a.Fetch(t.Context(), segName(baseSeg), filepath.Join(dir, "RECOVERYXLOG"))
	if !errors.Is(err, archive.ErrNoCluster) || errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Fetch from a repository without the cluster = %v, want ErrNoCluster and not ErrNotFound", err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("dest directory holds %q", got)
	}
}

func TestFetchBadName(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	dir := t.TempDir()
	if err := a.Fetch(t.Context(), "../foo", filepath.Join(dir, "x")); !errors.Is(err, wal.ErrNotWALName) {
		t.Fatalf("Fetch(bad name) = %v, want ErrNotWALName", err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("dest directory holds %q", got)
	}
}

func TestFetchGetFails(t *testing.T) {
	k := newKeys(t)
	faulty := &storagetest.Faulty{Backend: memory.New()}
	a := newArchive(faulty, "main", k)
	path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, path, archive.Stored)
	faulty.GetErr = func(string) error { return errBoom }
	dir := t.TempDir()
	err := a.Fetch(t.Context(), filepath.Base(path), filepath.Join(dir, "x"))
	if !errors.Is(err, errBoom) || errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Fetch with failing Get = %v, want errBoom and not ErrNotFound", err)
	}
	if got := dirNames(t, dir); len(got) != 0 {
		t.Errorf("dest directory holds %q", got)
	}
}

func TestFetchWrongIdentity(t *testing.T) {
	k := newKeys(t)
	other := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	path, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, path, archive.Stored)

	tests := []struct {
		name   string
		opener *seal.Opener
		want   error
	}{
		{"wrong identity", other.opener, seal.ErrWrongIdentity},
		{"no identity", other.noOpener, seal.ErrNoIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newArchive(store, "main", k)
			b.Opener = tt.opener
			dir := t.TempDir()
			dest := filepath.Join(dir, "RECOVERYXLOG")
			if err := b.Fetch(t.Context(), filepath.Base(path), dest); !errors.Is(err, tt.want) {
				t.Fatalf("Fetch = %v, want %v", err, tt.want)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Errorf("dest directory holds %q", got)
			}
		})
	}
}

func TestFetchCorrupt(t *testing.T) {
	k := newKeys(t)
	path, data := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	name := filepath.Base(path)
	tests := []struct {
		name   string
		mutate func(sealed []byte, meta map[string]string) []byte
	}{
		{"wrong checksum", func(s []byte, m map[string]string) []byte {
			m[archive.MetaChecksum] = checksumOf(append([]byte("x"), data...))
			return s
		}},
		{"wrong size", func(s []byte, m map[string]string) []byte {
			m[archive.MetaSize] = strconv.Itoa(len(data) + 1)
			return s
		}},
		{"truncated", func(s []byte, m map[string]string) []byte { return s[:len(s)-100] }},
		{"flipped byte", func(s []byte, m map[string]string) []byte {
			s = bytes.Clone(s)
			s[len(s)/2] ^= 0x40
			return s
		}},
		{"not sealed", func(s []byte, m map[string]string) []byte { return []byte("garbage, not a sealed object") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := memory.New()
			a := newArchive(store, "main", k)
			mustPush(t, a, path, archive.Stored)
			key := a.Layout.WALKey(name, seal.SuffixEncrypted)
			sealed, info := getObject(t, store, key)
			meta := map[string]string{}
			for mk, mv := range info.Metadata {
				meta[mk] = mv
			}
			sealed = tt.mutate(sealed, meta)
			if err := store.Put(t.Context(), key, bytes.NewReader(sealed), int64(len(sealed)), meta); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			dest := filepath.Join(dir, "RECOVERYXLOG")
			if err := a.Fetch(t.Context(), name, dest); !errors.Is(err, seal.ErrCorrupt) {
				t.Fatalf("Fetch = %v, want seal.ErrCorrupt", err)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Errorf("dest directory holds %q", got)
			}
		})
	}
}

func TestFetchPlainWithoutIdentity(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	a.Sealer = k.plain
	a.Opener = k.noOpener
	path, data := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	name := filepath.Base(path)
	mustPush(t, a, path, archive.Stored)
	key := a.Layout.WALKey(name, seal.SuffixPlain)
	if key != "main/wal/"+name+".zst" {
		t.Fatalf("plain key = %q", key)
	}
	if _, err := store.Stat(t.Context(), key); err != nil {
		t.Fatalf("plain object: %v", err)
	}
	for _, op := range []*seal.Opener{k.noOpener, k.opener} {
		a.Opener = op
		dest := filepath.Join(t.TempDir(), name)
		if err := a.Fetch(t.Context(), name, dest); err != nil {
			t.Fatalf("Fetch(plain, CanDecrypt=%v): %v", op.CanDecrypt(), err)
		}
		assertFile(t, dest, data)
	}
}

// pushSegments pushes segments from..to (inclusive) of testSysID and
// returns their contents by name.
func pushSegments(t *testing.T, a *archive.Archive, from, to uint64) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	dir := t.TempDir()
	for n := from; n <= to; n++ {
		data := segmentData(segSpec{segno: n, sysid: testSysID})
		name := segName(n)
		mustPush(t, a, writeFile(t, dir, name, data), archive.Stored)
		out[name] = data
	}
	return out
}

func TestSpoolTakeAbsent(t *testing.T) {
	for _, exists := range []bool{false, true} {
		t.Run(fmt.Sprintf("dir exists %v", exists), func(t *testing.T) {
			s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
			if exists {
				if err := s.Want(segName(baseSeg)); err != nil {
					t.Fatal(err)
				}
			}
			destDir := t.TempDir()
			ok, err := s.Take(segName(baseSeg+1), filepath.Join(destDir, "RECOVERYXLOG"))
			if err != nil || ok {
				t.Fatalf("Take(absent) = %v, %v; want false, nil", ok, err)
			}
			if got := dirNames(t, destDir); len(got) != 0 {
				t.Errorf("dest directory holds %q", got)
			}
		})
	}
}

func TestPrefetchFillsWindow(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	segs := pushSegments(t, a, baseSeg+1, baseSeg+5)
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Want(segName(baseSeg)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	want := []string{segName(baseSeg + 1), segName(baseSeg + 2), segName(baseSeg + 3)}
	got := spoolSegments(t, s.Dir)
	if !slices.Equal(got, want) {
		t.Fatalf("spool holds %q, want %q", got, want)
	}
	for _, n := range want {
		assertFile(t, filepath.Join(s.Dir, n), segs[n])
	}
	for _, n := range dirNames(t, s.Dir) {
		if strings.HasPrefix(n, ".pgward-fetch-") {
			t.Errorf("temporary file %s left in the spool", n)
		}
	}
	if s.Busy() {
		t.Error("spool still busy after Prefetch returned")
	}

	// A second run with nothing new to do fetches nothing more.
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatalf("second Prefetch: %v", err)
	}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, want) {
		t.Errorf("after a second Prefetch the spool holds %q, want %q", got, want)
	}

	// Replay moves on: taking N+1 and wanting it extends the window.
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if ok, err := s.Take(segName(baseSeg+1), dest); !ok || err != nil {
		t.Fatalf("Take = %v, %v", ok, err)
	}
	if err := s.Want(segName(baseSeg + 1)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatalf("third Prefetch: %v", err)
	}
	want = []string{segName(baseSeg + 2), segName(baseSeg + 3), segName(baseSeg + 4)}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, want) {
		t.Errorf("after replay advanced the spool holds %q, want %q", got, want)
	}
	assertFile(t, filepath.Join(s.Dir, segName(baseSeg+4)), segs[segName(baseSeg+4)])
}

func TestPrefetchStopsAtArchiveEnd(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	segs := pushSegments(t, a, baseSeg+1, baseSeg+1)
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Want(segName(baseSeg)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatalf("Prefetch at the end of the archive: %v", err)
	}
	want := []string{segName(baseSeg + 1)}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, want) {
		t.Fatalf("spool holds %q, want %q", got, want)
	}
	assertFile(t, filepath.Join(s.Dir, want[0]), segs[want[0]])
	for _, n := range dirNames(t, s.Dir) {
		if strings.HasPrefix(n, ".pgward-fetch-") {
			t.Errorf("temporary file %s left in the spool", n)
		}
	}
}

func TestPrefetchEmptyArchive(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	pushSegments(t, a, baseSeg, baseSeg) // nothing after the wanted segment
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Want(segName(baseSeg)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatalf("Prefetch on an empty archive: %v", err)
	}
	if got := spoolSegments(t, s.Dir); len(got) != 0 {
		t.Errorf("spool holds %q", got)
	}
}

func TestPrefetchReportsStorageErrors(t *testing.T) {
	k := newKeys(t)
	faulty := &storagetest.Faulty{Backend: memory.New()}
	a := newArchive(faulty, "main", k)
	pushSegments(t, a, baseSeg+1, baseSeg+3)
	bad := segName(baseSeg + 2)
	faulty.GetErr = func(key string) error {
		if strings.Contains(key, bad) {
			return errBoom
		}
		return nil
	}
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Want(segName(baseSeg)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); !errors.Is(err, errBoom) {
		t.Fatalf("Prefetch with a failing Get = %v, want errBoom", err)
	}
	for _, n := range spoolSegments(t, s.Dir) {
		if n == bad {
			t.Errorf("the segment whose Get failed is in the spool")
		}
	}
}

func TestPrefetchWithoutWanted(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	s := archive.Spool{Dir: t.TempDir()}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err == nil {
		t.Fatal("Prefetch without a wanted name succeeded")
	}
}

func TestSpoolTakePrunesOlder(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	segs := pushSegments(t, a, baseSeg+1, baseSeg+3)
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Want(segName(baseSeg)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatal(err)
	}
	// Stale files replay has already passed.
	writeFile(t, s.Dir, segName(baseSeg-1), []byte("stale"))
	writeFile(t, s.Dir, segName(baseSeg), []byte("stale"))

	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	ok, err := s.Take(segName(baseSeg+1), dest)
	if err != nil || !ok {
		t.Fatalf("Take = %v, %v; want true, nil", ok, err)
	}
	assertFile(t, dest, segs[segName(baseSeg+1)])
	want := []string{segName(baseSeg + 2), segName(baseSeg + 3)}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, want) {
		t.Errorf("spool holds %q after Take, want %q", got, want)
	}
	// The bookkeeping files survive pruning.
	if _, err := os.Stat(filepath.Join(s.Dir, ".wanted")); err != nil {
		t.Errorf(".wanted: %v", err)
	}
	// Taking it again finds nothing.
	if ok, err := s.Take(segName(baseSeg+1), dest); ok || err != nil {
		t.Errorf("second Take = %v, %v; want false, nil", ok, err)
	}
	assertFile(t, dest, segs[segName(baseSeg+1)])
}

// A history file pushed by a server of another system (a restored staging
// copy promoted onto a new timeline) must not enter production's cluster.
func TestPushHistoryFromOtherSystemRefused(t *testing.T) {
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	seg, _ := writeSegment(t, segSpec{segno: baseSeg, sysid: testSysID})
	mustPush(t, a, seg, archive.Stored)

	name := "00000002.history"
	path := writeFile(t, t.TempDir(), name, []byte("1\t0/9000000\tno recovery target specified\n"))
	staging := newArchive(store, "main", k)
	staging.SystemIdentifier = otherSysID
	_, err := staging.Push(t.Context(), path)
	if !errors.Is(err, catalog.ErrOtherSystem) {
		t.Fatalf("history push from another system: %v, want ErrOtherSystem", err)
	}
	assertNoWALObject(t, store, a.Layout, name)

	own := newArchive(store, "main", k)
	own.SystemIdentifier = testSysID
	mustPush(t, own, path, archive.Stored)

	// A segment whose header disagrees with the server's pg_control.
	seg2, _ := writeSegment(t, segSpec{segno: baseSeg + 1, sysid: testSysID})
	if _, err := staging.Push(t.Context(), seg2); err == nil || !strings.Contains(err.Error(), "another PostgreSQL system") {
		t.Fatalf("segment with a header of another system than pg_control: %v", err)
	}
}

// A spool filled for one repository cluster must never serve another.
func TestSpoolClaimWipesOtherOrigin(t *testing.T) {
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Claim("main file:///a"); err != nil {
		t.Fatal(err)
	}
	name := segName(baseSeg)
	writeFile(t, s.Dir, name, []byte("from a"))
	writeFile(t, s.Dir, "notes.txt", []byte("not ours"))
	if err := s.Claim("main file:///a"); err != nil {
		t.Fatal(err)
	}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, []string{name, "notes.txt"}) {
		t.Fatalf("same origin: spool holds %q, want %q and notes.txt", got, name)
	}
	if err := s.Claim("other file:///b"); err != nil {
		t.Fatal(err)
	}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, []string{"notes.txt"}) {
		t.Fatalf("after a new origin the spool holds %q, want only notes.txt", got)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "notes.txt")); err != nil {
		t.Errorf("Claim removed a file that is not WAL: %v", err)
	}
	took, err := s.Take(name, filepath.Join(t.TempDir(), "RECOVERYXLOG"))
	if took || err != nil {
		t.Fatalf("Take after the origin changed = %v, %v; want false, nil", took, err)
	}
}

// The prefetcher must not spool the stream's partial under the segment's
// name: the whole segment may be stored after, and the spool would still
// hand the zero-padded partial to recovery.
func TestPrefetchNeverSpoolsStreamPartial(t *testing.T) {
	k := newKeys(t)
	a := newArchive(memory.New(), "main", k)
	pushSegments(t, a, baseSeg+1, baseSeg+1)
	whole := segmentData(segSpec{segno: baseSeg + 2, sysid: testSysID})
	partial := append(append([]byte(nil), whole[:len(whole)/2]...), make([]byte, len(whole)-len(whole)/2)...)
	next := segName(baseSeg + 2)
	if err := a.PutStreamPartial(t.Context(), next, partial, wal.LSN(1)); err != nil {
		t.Fatal(err)
	}
	s := archive.Spool{Dir: filepath.Join(t.TempDir(), "spool")}
	if err := s.Want(segName(baseSeg)); err != nil {
		t.Fatal(err)
	}
	if err := a.Prefetch(t.Context(), s, 3, testSegSize); err != nil {
		t.Fatalf("Prefetch: %v", err)
	}
	if got := spoolSegments(t, s.Dir); !slices.Equal(got, []string{segName(baseSeg + 1)}) {
		t.Fatalf("spool holds %q, want only the whole segment before the partial", got)
	}
	// wal-fetch itself still serves the partial while it is all there is.
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	if err := a.Fetch(t.Context(), next, dest); err != nil {
		t.Fatalf("Fetch of a segment stored only as the stream's partial: %v", err)
	}
	assertFile(t, dest, partial)
	// Once the whole segment is stored, that is what recovery gets.
	if _, err := a.Push(t.Context(), writeFile(t, t.TempDir(), next, whole)); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteStreamPartial(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Take(next, dest); ok || err != nil {
		t.Fatalf("Take(%s) = %v, %v: the spool served something for a segment it never held whole", next, ok, err)
	}
	if err := a.Fetch(t.Context(), next, dest); err != nil {
		t.Fatal(err)
	}
	assertFile(t, dest, whole)
}

// At promotion PostgreSQL archives <segment>.partial; it replaces the
// stream's partial of that name, and after that the stream's never
// replaces it back.
func TestPushedPartialReplacesStreamPartial(t *testing.T) {
	ctx := t.Context()
	k := newKeys(t)
	store := memory.New()
	a := newArchive(store, "main", k)
	pushSegments(t, a, baseSeg, baseSeg)
	seg := segName(baseSeg + 1)
	whole := segmentData(segSpec{segno: baseSeg + 1, sysid: testSysID})
	streamed := append(append([]byte(nil), whole[:len(whole)/4]...), make([]byte, len(whole)-len(whole)/4)...)
	promoted := append(append([]byte(nil), whole[:len(whole)/2]...), make([]byte, len(whole)-len(whole)/2)...)
	if err := a.PutStreamPartial(ctx, seg, streamed, wal.LSN(1)); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), seg+wal.PartialSuffix, promoted)
	if res, err := a.Push(ctx, path); err != nil || res != archive.Stored {
		t.Fatalf("Push of PostgreSQL's partial = %v, %v", res, err)
	}
	dest := filepath.Join(t.TempDir(), "x")
	if err := a.Fetch(ctx, seg+wal.PartialSuffix, dest); err != nil {
		t.Fatal(err)
	}
	assertFile(t, dest, promoted)
	if res, err := a.Push(ctx, path); err != nil || res != archive.AlreadyStored {
		t.Fatalf("second Push = %v, %v, want already stored", res, err)
	}
	if err := a.PutStreamPartial(ctx, seg, whole, wal.LSN(2)); !errors.Is(err, archive.ErrNotStreamPartial) {
		t.Fatalf("PutStreamPartial over PostgreSQL's partial: %v", err)
	}
	// The stream's partial is not the segment: the repository now holds
	// only PostgreSQL's partial for it, and no whole segment.
	if err := a.Fetch(ctx, seg, dest); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Fetch of the segment = %v, want not found (only PostgreSQL's partial exists)", err)
	}
}

// A file repository copied without its extended attributes has lost the
// checksums; an unencrypted object cut at a frame boundary would then
// unseal cleanly. Fetch still checks a segment against its page header.
func TestFetchWithoutChecksumChecksSegmentHeader(t *testing.T) {
	store := memory.New()
	plain := seal.NewSealer(nil, seal.LevelFastest, 0)
	a := &archive.Archive{Store: store, Layout: catalog.Layout{Cluster: "main"}, Sealer: plain, Opener: seal.NewOpener(nil), Now: func() time.Time { return fixedNow }}
	pushSegments(t, a, baseSeg, baseSeg) // writes cluster.json
	seg := segName(baseSeg + 1)
	data := segmentData(segSpec{segno: baseSeg + 1, sysid: testSysID})
	put := func(name string, content []byte) {
		var sealed bytes.Buffer
		if _, err := plain.SealBytes(&sealed, content, seal.Claims{Key: a.Layout.WALKey(name, seal.SuffixPlain)}); err != nil {
			t.Fatal(err)
		}
		if err := store.Put(t.Context(), a.Layout.WALKey(name, seal.SuffixPlain), &sealed, int64(sealed.Len()), nil); err != nil {
			t.Fatal(err)
		}
	}
	dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
	put(seg, data[:len(data)/2])
	if err := a.Fetch(t.Context(), seg, dest); !errors.Is(err, seal.ErrCorrupt) || !strings.Contains(err.Error(), "truncated?") {
		t.Fatalf("Fetch of a truncated segment without checksum = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatal("the truncated segment reached the destination")
	}
	put(segName(baseSeg+2), data) // whole, but under another segment's name
	if err := a.Fetch(t.Context(), segName(baseSeg+2), dest); !errors.Is(err, seal.ErrCorrupt) {
		t.Fatalf("Fetch of a segment stored under another name = %v, want ErrCorrupt", err)
	}
	put(seg, data)
	if err := a.Fetch(t.Context(), seg, dest); err != nil {
		t.Fatalf("Fetch of a whole segment without checksum: %v", err)
	}
	assertFile(t, dest, data)
}
