//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/minio/minio-go/v7"
	"github.com/zeebo/xxh3"

	"github.com/pgward/pgward/internal/miniotest"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/wal"
)

// The refusals of a signed repository, each as issue 11 reproduced the
// attack: segments swapped with mv, an S3 key copied over another, objects
// and documents forged with only the recipient, a signer rotation, junk
// history files. Each asserts pgward's message, its exit status and that
// nothing outside the target changed.

// signingKeyPair generates a writer's signing key in dir/name, readable
// by the postgres user, and returns it with its public key.
func signingKeyPair(t *testing.T, dir, name string) (keyFile, public string) {
	t.Helper()
	keyFile = filepath.Join(dir, name)
	out := must(t, dir, nil, pgward, "keys", "generate", "--signing", "--output", keyFile)
	public = strings.TrimSpace(out)
	if !strings.HasPrefix(public, "pgwsig1") {
		t.Fatalf("keys generate --signing printed %q, want a pgwsig1… public key", out)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key file %s: %v, mode %v; want 0600", keyFile, err, fi.Mode())
	}
	return keyFile, public
}

// signedArchiving is a running primary whose archive_command signs with
// signingKey into a fresh encrypted file repository.
type signedArchiving struct {
	archiving
	signingKey, signer string // the key file wal-push reads, and its public key
}

func newSignedArchiving(t *testing.T) signedArchiving {
	t.Helper()
	s := signedArchiving{archiving: archiving{base: testDir(t)}}
	s.identity, s.recipient = keyPair(t, s.base)
	s.signingKey, s.signer = signingKeyPair(t, s.base, "signing.key")
	s.repoPath = repoDir(t, s.base)
	s.repo = "file://" + s.repoPath
	s.primary = newPrimary(t, s.base, pgward+" --repo "+s.repo+" --recipient "+s.recipient+" --signing-key-file "+s.signingKey+" wal-push %p",
		"max_wal_senders = 10")
	s.primary.start()
	s.source = fmt.Sprintf("host=%s port=%d user=postgres", s.base, s.primary.port)
	return s
}

// archiveSegments writes a little and closes a segment n times, waiting
// for each to be archived, and returns their names.
func archiveSegments(t *testing.T, c *cluster, n int) []string {
	t.Helper()
	c.psql("CREATE TABLE IF NOT EXISTS sig_filler (x int)")
	var segs []string
	for range n {
		c.psql("INSERT INTO sig_filler SELECT generate_series(1, 100)")
		segs = append(segs, c.switchAndWaitArchived(time.Minute))
	}
	return segs
}

// fileTreeState records every path under root with its mode, size,
// modification time and a hash of its content (or link target): equal
// states mean nothing under root was touched.
func fileTreeState(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		v := fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += fmt.Sprintf(" %x", sha256.Sum256(b))
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			v += " -> " + l
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// assertTreeUnchanged fails the test when the tree under root differs
// from before.
func assertTreeUnchanged(t *testing.T, what, root string, before map[string]string) {
	t.Helper()
	after := fileTreeState(t, root)
	for p, v := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s: %s was removed", what, p)
		} else if a != v {
			t.Errorf("%s: %s changed", what, p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s was created", what, p)
		}
	}
}

// ownedEmptyDir creates an empty directory dir/name for the postgres
// user.
func ownedEmptyDir(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	own(t, p)
	return p
}

// walFetchInto runs wal-fetch for name into an empty directory of its own
// with the global flags args; on a failure the directory must stay empty
// (no file, no temporary left behind). It returns the result and the
// destination path.
func walFetchInto(t *testing.T, dir string, env []string, name string, args ...string) (result, string) {
	t.Helper()
	into, err := os.MkdirTemp(dir, "fetch-")
	if err != nil {
		t.Fatal(err)
	}
	own(t, into)
	dest := filepath.Join(into, "RECOVERYXLOG")
	r := run(t, dir, env, pgward, append(args, "wal-fetch", name, dest)...)
	if r.code != 0 {
		// The prefetch spool may be set up (it is pg_wal's own); it must
		// hold no WAL file.
		left, _ := os.ReadDir(into)
		spooled, _ := os.ReadDir(filepath.Join(into, ".pgward-prefetch"))
		for _, e := range spooled {
			if _, err := wal.ParseFileName(e.Name()); err == nil || strings.Contains(e.Name(), name) {
				left = append(left, e)
			}
		}
		if len(left) > 1 || len(left) == 1 && left[0].Name() != ".pgward-prefetch" {
			t.Errorf("wal-fetch %s failed (exit %d) but left %v in %s", name, r.code, left, into)
		}
	}
	return r, dest
}

// assertExit checks a command's exit status and that its stderr holds
// each of want.
func assertExit(t *testing.T, what string, r result, code int, want ...string) {
	t.Helper()
	ok := r.code == code
	for _, w := range want {
		ok = ok && strings.Contains(r.stderr, w)
	}
	if !ok {
		t.Errorf("%s: exit %d, stderr:\n%s\nwant exit %d with %q", what, r.code, r.stderr, code, want)
	}
}

// assertSameFile fails the test unless file got holds exactly file want.
func assertSameFile(t *testing.T, what, got, want string) {
	t.Helper()
	g, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		t.Errorf("%s: %d bytes that differ from %s (%d bytes)", what, len(g), want, len(w))
	}
}

// writeOwnedFile writes a file the postgres user owns.
func writeOwnedFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	own(t, path)
}

// forgeSealed seals data as pgward would for key, to recipient, signed
// by signingKey (a key file; "" for none): what anyone who knows the
// recipient can write.
func forgeSealed(t *testing.T, recipient, signingKey string, data []byte, c seal.Claims) []byte {
	t.Helper()
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		t.Fatal(err)
	}
	s := seal.NewSealer([]age.Recipient{r}, seal.LevelFastest, 1)
	if signingKey != "" {
		k, err := seal.LoadSigningKey(signingKey)
		if err != nil {
			t.Fatal(err)
		}
		s.SignWith(k)
	}
	var out bytes.Buffer
	if _, err := s.SealBytes(&out, data, c); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// forgeSegment seals the WAL segment at path for key with the claims a
// real push makes (timeline, address, system from its header).
func forgeSegment(t *testing.T, recipient, signingKey, path, key string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hdr, err := wal.ReadSegmentHeader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return forgeSealed(t, recipient, signingKey, data, seal.Claims{Key: key, Kind: seal.KindWAL,
		Timeline: hdr.Timeline, Address: uint64(hdr.PageAddr), SystemIdentifier: hdr.SystemIdentifier})
}

// TestSignedArchiveSwapRefused swaps two stored segments with mv, as an
// operator tidying a bucket might: in a signed repository wal-fetch
// refuses each as signed for the other's place, in an unsigned one the
// page header gives it away, and verify names both.
func TestSignedArchiveSwapRefused(t *testing.T) {
	t.Parallel()
	a := newSignedArchiving(t)
	base := a.base
	segs := archiveSegments(t, a.primary, 3)
	s1, s2 := segs[0], segs[1]
	walDir := filepath.Join(a.repoPath, "main", "wal")
	obj := func(dir, seg string) string { return filepath.Join(dir, seg+".zst.age") }
	reader := []string{"--repo", a.repo, "--identity-file", a.identity, "--trusted-signer", a.signer}

	// The same segments, pushed by hand without a signing key into an
	// unsigned repository.
	unsignedPath := ownedEmptyDir(t, base, "unsigned-repo")
	unsignedRepo := "file://" + unsignedPath
	for _, seg := range segs {
		r := run(t, base, nil, pgward, "--repo", unsignedRepo, "--recipient", a.recipient, "wal-push", filepath.Join(a.primary.dir, "pg_wal", seg))
		assertExit(t, "wal-push without a signing key", r, 0, "no signing key: objects are stored unsigned")
	}
	unsignedWAL := filepath.Join(unsignedPath, "main", "wal")

	// Intact, the signed repository verifies as all signed.
	entries, err := os.ReadDir(walDir)
	if err != nil {
		t.Fatal(err)
	}
	n := len(entries)
	r := run(t, base, nil, pgward, append(reader, "verify")...)
	if want := fmt.Sprintf("verified %d of %d objects: %d signed, 0 unsigned, 0 damaged or not authentic\n", n, n, n); r.code != 0 || r.stdout != want {
		t.Errorf("verify of the intact repository: exit %d, %q %s; want exit 0 and %q", r.code, r.stdout, r.stderr, want)
	}
	r, dest := walFetchInto(t, base, nil, s1, reader...)
	if r.code != 0 {
		t.Fatalf("wal-fetch %s before the swap: exit %d: %s", s1, r.code, r.stderr)
	}
	assertSameFile(t, "wal-fetch "+s1, dest, filepath.Join(a.primary.dir, "pg_wal", s1))

	// mv, as an operator would; the xattrs (size, checksum) move along.
	swap := func(dir string) {
		must(t, base, nil, "mv", obj(dir, s1), obj(dir, "aside"))
		must(t, base, nil, "mv", obj(dir, s2), obj(dir, s1))
		must(t, base, nil, "mv", obj(dir, "aside"), obj(dir, s2))
	}
	swap(walDir)
	swap(unsignedWAL)
	signedState, unsignedState := fileTreeState(t, a.repoPath), fileTreeState(t, unsignedPath)

	// (a) Signed: each is refused as signed for the other's key.
	for _, tc := range [][2]string{{s1, s2}, {s2, s1}} {
		r, _ := walFetchInto(t, base, nil, tc[0], reader...)
		assertExit(t, "wal-fetch "+tc[0]+" swapped in a signed repository", r, 255,
			"the object was signed for another place in the repository: it was signed as main/wal/"+tc[1]+".zst.age (moved, swapped or copied over another object)")
	}
	// (b) Unsigned: the page header does not match the name.
	for _, tc := range [][2]string{{s1, s2}, {s2, s1}} {
		r, _ := walFetchInto(t, base, nil, tc[0], "--repo", unsignedRepo, "--identity-file", a.identity)
		assertExit(t, "wal-fetch "+tc[0]+" swapped in an unsigned repository", r, 255,
			"main/wal/"+tc[0]+".zst.age is not this file", "file "+tc[0]+" holds WAL from LSN ", "(segment "+tc[1]+"): the name does not match the content",
			"no --trusted-signer: objects are read without checking who wrote them")
	}
	// The untouched third segment still reads from both; a segment not
	// archived yet is the end of the archive (exit 1), not an error.
	for _, flags := range [][]string{reader, {"--repo", unsignedRepo, "--identity-file", a.identity}} {
		if r, _ := walFetchInto(t, base, nil, segs[2], flags...); r.code != 0 {
			t.Errorf("wal-fetch of an untouched segment from %s: exit %d: %s", flags[1], r.code, r.stderr)
		}
		if r, _ := walFetchInto(t, base, nil, "0000000100000000000000F0", flags...); r.code != 1 {
			t.Errorf("wal-fetch of a segment not archived from %s: exit %d: %s; want 1", flags[1], r.code, r.stderr)
		}
	}

	// (c) verify names both swapped objects, in either repository.
	r = run(t, base, nil, pgward, append(reader, "verify")...)
	want := fmt.Sprintf("verified %d of %d objects: %d signed, 0 unsigned, 2 damaged or not authentic\n", n, n, n-2)
	if r.code != 1 || !strings.HasSuffix(r.stdout, want) ||
		!strings.Contains(r.stdout, "DAMAGED main/wal/"+s1+".zst.age: ") || !strings.Contains(r.stdout, "DAMAGED main/wal/"+s2+".zst.age: ") ||
		!strings.Contains(r.stdout, "it was signed as main/wal/"+s2+".zst.age") || !strings.Contains(r.stderr, "2 damaged or forged objects") {
		t.Errorf("verify of the swapped repository: exit %d\nstdout: %s\nstderr: %s\nwant exit 1, both named, and %q", r.code, r.stdout, r.stderr, want)
	}
	un, err := os.ReadDir(unsignedWAL)
	if err != nil {
		t.Fatal(err)
	}
	r = run(t, base, nil, pgward, "--repo", unsignedRepo, "--identity-file", a.identity, "verify")
	want = fmt.Sprintf("verified %d of %d objects: 0 signed, %d unsigned, 2 damaged or not authentic\n", len(un), len(un), len(un)-2)
	if r.code != 1 || !strings.HasSuffix(r.stdout, want) ||
		!strings.Contains(r.stdout, "DAMAGED main/wal/"+s1+".zst.age: ") || !strings.Contains(r.stdout, "DAMAGED main/wal/"+s2+".zst.age: ") {
		t.Errorf("verify of the swapped unsigned repository: exit %d\nstdout: %s\nstderr: %s\nwant exit 1, both named, and %q", r.code, r.stdout, r.stderr, want)
	}
	assertTreeUnchanged(t, "refused fetches and verify", a.repoPath, signedState)
	assertTreeUnchanged(t, "refused fetches and verify", unsignedPath, unsignedState)
}

// TestSignedS3CopyOverRefused copies one segment's key over another's on
// the S3 server itself (metadata and all): wal-fetch refuses it as
// misplaced.
func TestSignedS3CopyOverRefused(t *testing.T) {
	t.Parallel()
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	signingKey, signer := signingKeyPair(t, base, "signing.key")
	repo := "s3://" + bucket + "/pg"
	primary := newPrimary(t, base, pgward+" --repo "+repo+" --recipient "+recipient+" --signing-key-file "+signingKey+" wal-push %p")
	primary.env = srv.Env()
	primary.start()
	segs := archiveSegments(t, primary, 2)
	s1, s2 := segs[0], segs[1]
	reader := []string{"--repo", repo, "--identity-file", identity, "--trusted-signer", signer}

	c := minioClient(t, srv)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	bucketState := func() map[string]string {
		out := map[string]string{}
		for oi := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
			if oi.Err != nil {
				t.Fatal(oi.Err)
			}
			out[oi.Key] = oi.ETag
		}
		return out
	}
	if r, dest := walFetchInto(t, base, srv.Env(), s1, reader...); r.code != 0 {
		t.Fatalf("wal-fetch %s before the copy: exit %d: %s", s1, r.code, r.stderr)
	} else {
		assertSameFile(t, "wal-fetch "+s1, dest, filepath.Join(primary.dir, "pg_wal", s1))
	}

	// s2's object over s1's key, server-side, its metadata copied along.
	key1, key2 := "pg/main/wal/"+s1+".zst.age", "pg/main/wal/"+s2+".zst.age"
	if _, err := c.CopyObject(ctx, minio.CopyDestOptions{Bucket: bucket, Object: key1}, minio.CopySrcOptions{Bucket: bucket, Object: key2}); err != nil {
		t.Fatal(err)
	}
	before := bucketState()
	if before[key1] != before[key2] {
		t.Fatalf("the server-side copy did not take: %s has ETag %s, %s has %s", key1, before[key1], key2, before[key2])
	}
	r, _ := walFetchInto(t, base, srv.Env(), s1, reader...)
	assertExit(t, "wal-fetch "+s1+" copied over from "+s2, r, 255,
		"fetch "+s1+": the object was signed for another place in the repository: it was signed as main/wal/"+s2+".zst.age (moved, swapped or copied over another object)")
	if r, _ := walFetchInto(t, base, srv.Env(), s2, reader...); r.code != 0 {
		t.Errorf("wal-fetch of the copy's source %s: exit %d: %s", s2, r.code, r.stderr)
	}
	r = run(t, base, srv.Env(), pgward, append(reader, "verify")...)
	if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED main/wal/"+s1+".zst.age: the object was signed for another place") ||
		!strings.Contains(r.stdout, " 1 damaged or not authentic\n") {
		t.Errorf("verify after the copy: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	after := bucketState()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("the refused fetch or verify changed the bucket:\nbefore %v\nafter  %v", before, after)
	}
}

// TestSignedForgeryRefused forges objects with only the recipient (and
// with another signing key): a segment, a backup.json that adds a
// tablespace somewhere on the restore host, and a dump. Each is refused
// before anything is written.
func TestSignedForgeryRefused(t *testing.T) {
	t.Parallel()
	a := newSignedArchiving(t)
	base, p := a.base, a.primary
	otherKey, other := signingKeyPair(t, base, "other-signing.key")
	reader := []string{"--repo", a.repo, "--identity-file", a.identity, "--trusted-signer", a.signer}
	writer := []string{"--repo", a.repo, "--recipient", a.recipient, "--signing-key-file", a.signingKey}

	// A backup and a dump, signed.
	p.psql("CREATE DATABASE shop")
	p.psqlDB("shop", "CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, 'item ' || g FROM generate_series(1, 50) g")
	stop := p.keepSwitching()
	out := must(t, base, nil, pgward, append(writer, "backup", "--source", a.source, "--checkpoint", "fast", "--wal-timeout", "2m", "--json")...)
	stop()
	var backup struct{ ID string }
	if err := json.Unmarshal([]byte(out), &backup); err != nil || backup.ID == "" {
		t.Fatalf("backup --json: %v\n%s", err, out)
	}
	segs := archiveSegments(t, p, 2)
	out = must(t, base, nil, pgward, append(writer, "dump", "--source", a.source+" dbname=postgres", "--database", "shop", "--no-globals", "--json")...)
	var dumps []struct{ ID, Object string }
	if err := json.Unmarshal([]byte(out), &dumps); err != nil || len(dumps) != 1 {
		t.Fatalf("dump --json: %v\n%s", err, out)
	}

	// The real dump restores.
	if r := run(t, base, nil, pgward, append(reader, "dump", "restore", "--database", "shop", "--into", a.source+" dbname=shop_copy")...); r.code != 0 {
		t.Errorf("dump restore of the signed dump: exit %d: %s", r.code, r.stderr)
	} else if got := p.psqlDB("shop_copy", "SELECT count(*) FROM orders"); got != "50" {
		t.Errorf("dump restore of the signed dump: %s orders, want 50", got)
	}

	// A segment forged under a missing segment's key: the real one is
	// gone (set aside), the forgery holds exactly its bytes.
	victim := segs[0]
	victimKey := "main/wal/" + victim + ".zst.age"
	victimObj := filepath.Join(a.repoPath, victimKey)
	victimWAL := filepath.Join(p.dir, "pg_wal", victim)
	if err := os.Rename(victimObj, filepath.Join(base, "set-aside")); err != nil {
		t.Fatal(err)
	}
	must(t, base, nil, "sh", "-c", `zstd -q -1 -c "$1" | age -r "$2" > "$3"`, "sh", victimWAL, a.recipient, victimObj)
	state := fileTreeState(t, a.repoPath)
	r, _ := walFetchInto(t, base, nil, victim, reader...)
	assertExit(t, "wal-fetch of a segment forged with the recipient alone", r, 255,
		"fetch "+victim+": the object carries no signature (a repository written before signing, or a forgery): give --allow-unsigned to read it anyway")
	r = run(t, base, nil, pgward, append(reader, "verify")...)
	if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED "+victimKey+": the object carries no signature") {
		t.Errorf("verify with a forged segment: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	// --allow-unsigned serves it, as it is correct, and says so.
	r, dest := walFetchInto(t, base, nil, victim, append(reader, "--allow-unsigned")...)
	if r.code != 0 || !strings.Contains(r.stderr, "reading objects that carry no signature (--allow-unsigned): they are not authenticated") {
		t.Errorf("wal-fetch --allow-unsigned of an unsigned but correct segment: exit %d, stderr:\n%s\nwant exit 0 and the warning", r.code, r.stderr)
	} else {
		assertSameFile(t, "wal-fetch --allow-unsigned "+victim, dest, victimWAL)
	}
	assertTreeUnchanged(t, "fetches of a forged unsigned segment", a.repoPath, state)
	// Signed with another key, every claim right: refused, also with
	// --allow-unsigned.
	writeOwnedFile(t, victimObj, forgeSegment(t, a.recipient, otherKey, victimWAL, victimKey))
	state = fileTreeState(t, a.repoPath)
	for _, extra := range [][]string{nil, {"--allow-unsigned"}} {
		r, _ := walFetchInto(t, base, nil, victim, append(reader, extra...)...)
		assertExit(t, fmt.Sprintf("wal-fetch %v of a segment signed by an untrusted key", extra), r, 255,
			"fetch "+victim+": the object's signature does not hold: signed by "+other+", which is not a --trusted-signer")
	}
	assertTreeUnchanged(t, "refused fetches of forged segments", a.repoPath, state)
	if err := os.Rename(filepath.Join(base, "set-aside"), victimObj); err != nil {
		t.Fatal(err)
	}

	// backup.json forged to add a tablespace archive whose location is a
	// directory of the restore host's, with a sealed tar of its own.
	prefix := "main/basebackups/" + backup.ID + "/"
	infoPath := filepath.Join(a.repoPath, prefix+"backup.json")
	signed, err := os.ReadFile(infoPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(signed), "\n"), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, `{"pgward-signature":"`) {
		t.Fatalf("backup.json does not end in a signature line: %q", last)
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(strings.Join(lines[:len(lines)-1], "\n")), &info); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	payload := []byte("ssh-ed25519 AAAAforged attacker\n")
	tw.WriteHeader(&tar.Header{Name: "authorized_keys", Mode: 0o600, Size: int64(len(payload)), Typeflag: tar.TypeReg, ModTime: time.Now()})
	tw.Write(payload)
	tw.Close()
	partKey := prefix + "16390.tar.0000.zst.age"
	// forgeInfo stores the tablespace's part and returns backup.json with
	// the archive added, its location the restore host's dir, signed by
	// signingKey ("": unsigned).
	forgeInfo := func(signingKey, dir string) []byte {
		t.Helper()
		part := forgeSealed(t, a.recipient, signingKey, tarball.Bytes(), seal.Claims{Key: partKey, Kind: seal.KindBackupPart})
		writeOwnedFile(t, filepath.Join(a.repoPath, partKey), part)
		forged := map[string]any{}
		for k, v := range info {
			forged[k] = v
		}
		forged["archives"] = append(append([]any{}, info["archives"].([]any)...), map[string]any{
			"name": "16390.tar", "tablespace_location": dir,
			"parts": []any{map[string]any{"key": partKey, "bytes": tarball.Len(), "stored_bytes": len(part), "xxh3_128": xxh3Hex(tarball.Bytes())}},
		})
		doc, err := json.MarshalIndent(forged, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		doc = append(doc, '\n')
		if signingKey != "" {
			k, err := seal.LoadSigningKey(signingKey)
			if err != nil {
				t.Fatal(err)
			}
			if doc, err = k.SignDocument(doc, prefix+"backup.json"); err != nil {
				t.Fatal(err)
			}
		}
		return doc
	}
	for i, tc := range []struct {
		what, signingKey string
		flags            []string
		want             string // "": refused, whatever the message
	}{
		{"unsigned", "", reader, prefix + "backup.json: the object carries no signature"},
		{"signed by another key", otherKey, reader, prefix + "backup.json: the object's signature does not hold: signed by " + other + ", which is not a --trusted-signer"},
		{"signed by another key, --allow-unsigned", otherKey, append(reader[:len(reader):len(reader)], "--allow-unsigned"), "which is not a --trusted-signer"},
		// Tablespace locations come only from a signed backup.json
		// (issue 11): one without a signature, read with --allow-unsigned
		// or with no --trusted-signer at all, must not send files there.
		{"unsigned, --allow-unsigned", "", append(reader[:len(reader):len(reader)], "--allow-unsigned"), ""},
		{"unsigned, no --trusted-signer", "", reader[:4], ""},
	} {
		target := ownedEmptyDir(t, base, fmt.Sprintf("planted-%d", i))
		writeOwnedFile(t, infoPath, forgeInfo(tc.signingKey, target))
		backups := filepath.Join(a.repoPath, "main", "basebackups") // WAL goes on being archived
		state := fileTreeState(t, backups)
		pgdata := filepath.Join(base, fmt.Sprintf("restored-%d", i))
		r := run(t, base, nil, pgward, append(tc.flags, "restore", "--latest", "--pgdata", pgdata)...)
		if tc.want != "" {
			assertExit(t, "restore of a forged backup.json ("+tc.what+")", r, 1, tc.want)
		} else if r.code == 0 {
			t.Errorf("restore of a forged backup.json (%s) with a tablespace at %s: exit 0, want refused\nstdout: %s\nstderr: %s", tc.what, target, r.stdout, r.stderr)
		}
		if _, err := os.Stat(pgdata); !os.IsNotExist(err) {
			t.Errorf("restore of a forged backup.json (%s) created %s", tc.what, pgdata)
		}
		if left, _ := os.ReadDir(target); len(left) != 0 {
			t.Errorf("restore of a forged backup.json (%s) wrote %v into %s, the location it names", tc.what, left, target)
		}
		if tc.want != "" && !slices.Contains(tc.flags, "--allow-unsigned") {
			r = run(t, base, nil, pgward, append(tc.flags, "verify")...)
			if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED backup.json: backup "+backup.ID+": "+tc.want) {
				t.Errorf("verify with a forged backup.json (%s): exit %d\nstdout: %s\nstderr: %s", tc.what, r.code, r.stdout, r.stderr)
			}
		}
		assertTreeUnchanged(t, "restore of a forged backup.json ("+tc.what+")", backups, state)
	}
	writeOwnedFile(t, infoPath, signed)
	os.Remove(filepath.Join(a.repoPath, partKey))

	// The dump replaced by a forged one: a real pg_dump of another
	// database, sealed to the recipient. Its first table's check
	// constraint writes a file on the server, and a larger table follows,
	// so that pg_restore meets the constraint well before the end of the
	// stream: a restore that refuses the forgery must not have run it.
	sideEffect := filepath.Join(base, "forged-dump-ran")
	p.psql("CREATE DATABASE evil")
	p.psqlDB("evil", `CREATE FUNCTION planted(x int) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN
			COPY (SELECT 'the forged dump ran') TO '`+sideEffect+`'; RETURN true; END$$;
		CREATE TABLE a_first (x int CHECK (planted(x))); INSERT INTO a_first VALUES (1);
		CREATE TABLE b_padding (s text); INSERT INTO b_padding SELECT md5(g::text) || md5((-g)::text) FROM generate_series(1, 200000) g`)
	if err := os.Remove(sideEffect); err != nil {
		t.Fatal(err)
	}
	dumpObj := filepath.Join(a.repoPath, "main", "dumps", "shop", dumps[0].ID, dumps[0].Object)
	must(t, base, nil, "sh", "-c", `pg_dump -Fc -h "$1" -p "$2" -U postgres -d evil | zstd -q -1 | age -r "$3" > "$4"`,
		"sh", base, fmt.Sprint(p.port), a.recipient, dumpObj)
	dumpsDir := filepath.Join(a.repoPath, "main", "dumps")
	state = fileTreeState(t, dumpsDir)
	r = run(t, base, nil, pgward, append(reader, "dump", "restore", "--database", "shop", "--into", a.source+" dbname=shop_restored")...)
	assertExit(t, "dump restore of a forged dump", r, 1,
		"restore dump "+dumps[0].ID+" of shop: the object carries no signature (a repository written before signing, or a forgery)")
	if n := p.psql("SELECT count(*) FROM pg_database WHERE datname = 'shop_restored'"); n != "0" {
		t.Errorf("a refused dump restore left database shop_restored")
	}
	if b, err := os.ReadFile(sideEffect); err == nil {
		t.Errorf("dump restore refused the forged dump, but only after pg_restore had run its SQL: it wrote %s (%q)", sideEffect, b)
	}
	r = run(t, base, nil, pgward, append(reader, "verify")...)
	if r.code != 1 || !strings.Contains(r.stdout, "DAMAGED main/dumps/shop/"+dumps[0].ID+"/"+dumps[0].Object+": the object carries no signature") {
		t.Errorf("verify with a forged dump: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	assertTreeUnchanged(t, "refused dump restore", dumpsDir, state)
}

// xxh3Hex is the XXH3-128 checksum backup.json records for data.
func xxh3Hex(data []byte) string {
	b := xxh3.Hash128(data).Bytes()
	return hex.EncodeToString(b[:])
}

// TestSignedRotationAndByHand rotates the writers' key from A to B: with
// both trusted a point-in-time restore reads the old and the new objects
// and recovers every row; with only B it refuses A's. A signed segment
// still opens by hand with age and zstd, and an older unsigned repository
// reads with --allow-unsigned, loudly.
func TestSignedRotationAndByHand(t *testing.T) {
	t.Parallel()
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	keyA, signerA := signingKeyPair(t, base, "a.key")
	keyB, signerB := signingKeyPair(t, base, "b.key")
	// wal-push reads the key file on every run: rotating is replacing it.
	current := filepath.Join(base, "current.key")
	rotate := func(to string) {
		t.Helper()
		data, err := os.ReadFile(to)
		if err != nil {
			t.Fatal(err)
		}
		writeOwnedFile(t, current+".new", data)
		if err := os.Rename(current+".new", current); err != nil {
			t.Fatal(err)
		}
	}
	rotate(keyA)
	repoPath := repoDir(t, base)
	repo := "file://" + repoPath
	p := newPrimary(t, base, pgward+" --repo "+repo+" --recipient "+recipient+" --signing-key-file "+current+" wal-push %p", "max_wal_senders = 10")
	p.start()
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, p.port)

	backupWith := func(key string) string {
		t.Helper()
		stop := p.keepSwitching()
		defer stop()
		out := must(t, base, nil, pgward, "--repo", repo, "--recipient", recipient, "--signing-key-file", key, "backup", "--source", source,
			"--checkpoint", "fast", "--wal-timeout", "2m", "--json")
		var b struct{ ID string }
		if err := json.Unmarshal([]byte(out), &b); err != nil || b.ID == "" {
			t.Fatalf("backup --json: %v\n%s", err, out)
		}
		return b.ID
	}
	p.psql("CREATE TABLE t (id int PRIMARY KEY)")
	p.psql("INSERT INTO t SELECT generate_series(1, 100)")
	backupA := backupWith(keyA)
	p.psql("INSERT INTO t SELECT generate_series(101, 200)")
	segA := p.switchAndWaitArchived(time.Minute)
	rotate(keyB)
	p.psql("INSERT INTO t SELECT generate_series(201, 300)")
	segB := p.switchAndWaitArchived(time.Minute)
	backupB := backupWith(keyB)
	p.psql("INSERT INTO t SELECT generate_series(301, 400)")
	p.switchAndWaitArchived(time.Minute)

	both := []string{"--repo", repo, "--identity-file", identity, "--trusted-signer", signerA + "," + signerB}
	onlyB := []string{"--repo", repo, "--identity-file", identity, "--trusted-signer", signerB}
	restoreAndCount := func(flags []string, backup string, replayed ...string) {
		t.Helper()
		dir := filepath.Join(base, "restored-"+backup)
		if r := run(t, base, nil, pgward, append(flags, "restore", "--backup", backup, "--latest", "--pgdata", dir)...); r.code != 0 {
			t.Errorf("restore of backup %s trusting %s: exit %d\n%s%s", backup, flags[len(flags)-1], r.code, r.stdout, r.stderr)
			return
		}
		c := &cluster{t: t, dir: dir, port: miniotest.FreePort(t), sock: base}
		c.appendConf("archive_mode = off")
		c.start()
		defer c.stop("immediate")
		c.waitPromoted(2 * time.Minute)
		if got := c.psql("SELECT count(*) || ' ' || min(id) || ' ' || max(id) FROM t"); got != "400 1 400" {
			t.Errorf("restored backup %s trusting %s: rows (count min max) = %s, want 400 1 400", backup, flags[len(flags)-1], got)
		}
		log, _ := os.ReadFile(c.logFile())
		for _, seg := range replayed {
			if !strings.Contains(string(log), `restored log file "`+seg+`" from archive`) {
				t.Errorf("recovery of backup %s did not restore %s from the archive:\n%s", backup, seg, tail(string(log), 30))
			}
		}
	}

	// Both trusted: A's backup recovers through A's WAL and B's.
	restoreAndCount(both, backupA, segA, segB)
	r := run(t, base, nil, pgward, append(both, "verify")...)
	if r.code != 0 || !strings.Contains(r.stdout, " 0 unsigned, 0 damaged or not authentic\n") {
		t.Errorf("verify trusting both: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}

	// Only B trusted, as once A's objects have left the retention window
	// (docs/operations.md): A's are refused, B's still read.
	r, _ = walFetchInto(t, base, nil, segA, onlyB...)
	assertExit(t, "wal-fetch of A's segment trusting only B", r, 255, "fetch "+segA+": the object's signature does not hold: signed by "+signerA+", which is not a --trusted-signer")
	state := fileTreeState(t, repoPath)
	refusedDir := filepath.Join(base, "restore-only-b")
	r = run(t, base, nil, pgward, append(onlyB, "restore", "--backup", backupA, "--latest", "--pgdata", refusedDir)...)
	assertExit(t, "restore of A's backup trusting only B", r, 1, "the object's signature does not hold: signed by "+signerA+", which is not a --trusted-signer")
	if _, err := os.Stat(refusedDir); !os.IsNotExist(err) {
		t.Errorf("restore trusting only B created %s", refusedDir)
	}
	assertTreeUnchanged(t, "restore of A's backup trusting only B", repoPath, state)
	if r, dest := walFetchInto(t, base, nil, segB, onlyB...); r.code != 0 {
		t.Errorf("wal-fetch of B's segment trusting only B: exit %d: %s", r.code, r.stderr)
	} else {
		assertSameFile(t, "wal-fetch "+segB, dest, filepath.Join(p.dir, "pg_wal", segB))
	}
	restoreAndCount(onlyB, backupB)

	// By hand: age, then zstd, gives the segment; the signature frame is
	// skipped.
	plain := filepath.Join(base, segB+".by-hand")
	must(t, base, nil, "sh", "-c", `age -d -i "$1" "$2" | zstd -q -d -c > "$3"`, "sh", identity, filepath.Join(repoPath, "main", "wal", segB+".zst.age"), plain)
	assertSameFile(t, "age -d | zstd -d of "+segB, plain, filepath.Join(p.dir, "pg_wal", segB))

	// An older repository, written before signing: pushed by hand
	// without a key.
	oldPath := ownedEmptyDir(t, base, "old-repo")
	old := "file://" + oldPath
	for _, seg := range []string{segA, segB} {
		r := run(t, base, nil, pgward, "--repo", old, "--recipient", recipient, "wal-push", filepath.Join(p.dir, "pg_wal", seg))
		assertExit(t, "wal-push without a signing key", r, 0, "no signing key: objects are stored unsigned, and restore hosts cannot tell them from forgeries")
	}
	oldReader := []string{"--repo", old, "--identity-file", identity, "--trusted-signer", signerA + "," + signerB}
	r, _ = walFetchInto(t, base, nil, segA, oldReader...)
	assertExit(t, "wal-fetch from an unsigned repository", r, 255, "the object carries no signature (a repository written before signing, or a forgery): give --allow-unsigned to read it anyway")
	r, dest := walFetchInto(t, base, nil, segA, append(oldReader, "--allow-unsigned")...)
	if r.code != 0 || strings.Count(r.stderr, "reading objects that carry no signature (--allow-unsigned)") != 1 {
		t.Errorf("wal-fetch --allow-unsigned from an unsigned repository: exit %d, stderr:\n%s\nwant exit 0 and one warning", r.code, r.stderr)
	} else {
		assertSameFile(t, "wal-fetch --allow-unsigned "+segA, dest, filepath.Join(p.dir, "pg_wal", segA))
	}
	r = run(t, base, nil, pgward, append(oldReader, "--allow-unsigned", "verify")...)
	if want := "verified 2 of 2 objects: 0 signed, 2 unsigned, 0 damaged or not authentic\n"; r.code != 0 || r.stdout != want ||
		strings.Count(r.stderr, "reading objects that carry no signature (--allow-unsigned)") != 1 {
		t.Errorf("verify --allow-unsigned of an unsigned repository: exit %d, %q, stderr:\n%s\nwant exit 0, %q and one warning", r.code, r.stdout, r.stderr, want)
	}
	r = run(t, base, nil, pgward, "--repo", old, "--identity-file", identity, "--allow-unsigned", "verify")
	assertExit(t, "--allow-unsigned without --trusted-signer", r, 1, "--allow-unsigned goes with --trusted-signer")
}

// TestSignedJunkHistoryRefused pushes history files PostgreSQL never
// writes: each is refused, nothing is stored, check still says OK, and
// the right file can still be pushed.
func TestSignedJunkHistoryRefused(t *testing.T) {
	t.Parallel()
	a := newSignedArchiving(t)
	base := a.base
	writer := []string{"--repo", a.repo, "--recipient", a.recipient, "--signing-key-file", a.signingKey}
	stop := a.primary.keepSwitching()
	must(t, base, nil, pgward, append(writer, "backup", "--source", a.source, "--checkpoint", "fast", "--wal-timeout", "2m")...)
	stop()
	archiveSegments(t, a.primary, 1)
	check := func(what string) {
		t.Helper()
		r := run(t, base, nil, pgward, "--repo", a.repo, "--identity-file", a.identity, "--trusted-signer", a.signer, "check")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "PGWARD OK - ") {
			t.Errorf("check %s: exit %d, %q %s", what, r.code, r.stdout, r.stderr)
		}
	}
	check("before the junk")

	dir := ownedEmptyDir(t, base, "pg_wal_junk")
	hist := filepath.Join(dir, "00000002.history")
	for _, tc := range []struct{ content, want string }{
		{"junk\n", "not storing it: invalid history file 00000002.history: line 1 \"junk\""},
		{"2\t0/3000000\tno recovery target specified\n", "not storing it: invalid history file 00000002.history: line 1"},
		{"1\t0/5000000\tfirst\n1\t0/3000000\tsecond\n", "not storing it: invalid history file 00000002.history: line 2"},
	} {
		must(t, dir, nil, "sh", "-c", `printf '%s' "$1" > 00000002.history`, "sh", tc.content)
		state := fileTreeState(t, a.repoPath)
		r := run(t, dir, nil, pgward, append(writer, "wal-push", hist)...)
		assertExit(t, fmt.Sprintf("wal-push of history %q", tc.content), r, 1, tc.want)
		assertTreeUnchanged(t, fmt.Sprintf("refused wal-push of %q", tc.content), a.repoPath, state)
	}
	check("after the junk")

	// The right file is stored and reads back.
	must(t, dir, nil, "sh", "-c", `printf '1\t0/3000000\tno recovery target specified\n' > 00000002.history`)
	must(t, dir, nil, pgward, append(writer, "wal-push", hist)...)
	r, dest := walFetchInto(t, base, nil, "00000002.history", "--repo", a.repo, "--identity-file", a.identity, "--trusted-signer", a.signer)
	if r.code != 0 {
		t.Errorf("wal-fetch of the right history file: exit %d: %s", r.code, r.stderr)
	} else {
		assertSameFile(t, "wal-fetch 00000002.history", dest, hist)
	}
}
