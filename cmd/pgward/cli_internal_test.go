package main

// In-process tests of the pgward command line: they call run() with
// arguments, as PostgreSQL would call the binary, and check exit statuses,
// what a user reads on stderr, and what lands on disk.
//
// wal-fetch with --prefetch > 0 starts a detached `pgward` through
// os.Executable(), which here would be the test binary: every wal-fetch
// below passes --prefetch 0.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgward/pgward/seal"
)

const (
	segSize = 16 << 20
	// sysID is above 2^53, so a JSON number would lose precision.
	sysID      = uint64(7301234567890123456)
	otherSysID = uint64(7309999999999999999)
	seg3       = "000000010000000000000003"
	seg4       = "000000010000000000000004"
)

// isolate removes every PGWARD_* variable from the environment for the
// duration of the test, so the caller's shell cannot change the outcome.
// (An empty but present variable counts as set, so unset them.)
func isolate(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PGWARD_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	t.Setenv("PGWARD_CONFIG", "") // not the host's /etc/pgward/pgward.yaml
}

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// pgward runs the command line in-process with args (without the program
// name).
func pgward(t *testing.T, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"pgward"}, args...), &stdout, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// check asserts the exit status and that stderr contains every phrase of
// want and none of notWant.
func (r result) check(t *testing.T, code int, want, notWant []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not mention %q:\n%s", w, r.stderr)
		}
	}
	for _, w := range notWant {
		if strings.Contains(r.stderr, w) || strings.Contains(r.stdout, w) {
			t.Errorf("output contains %q, which it must not:\nstdout: %s\nstderr: %s", w, r.stdout, r.stderr)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertAbsent(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s exists (or cannot be checked: %v), want it absent", path, err)
	}
}

// assertEmptyDir checks that dir holds no entries at all: no destination,
// no temporary file, no spool.
func assertEmptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s holds %s, want it empty", dir, e.Name())
	}
}

// fileRepo returns a fresh repository directory and its file:// URL.
func fileRepo(t *testing.T) (dir, url string) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "repo")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, "file://" + dir
}

// segmentHeader is a little-endian XLogLongPageHeaderData for segment
// segNo of a 16 MiB-segment PostgreSQL 15 system.
func segmentHeader(segNo, sysid uint64) []byte {
	le := binary.LittleEndian
	h := make([]byte, 40)
	le.PutUint16(h[0:], 0xD110)           // XLOG_PAGE_MAGIC of PostgreSQL 15
	le.PutUint16(h[2:], 0x0002)           // XLP_LONG_HEADER
	le.PutUint32(h[4:], 1)                // timeline
	le.PutUint64(h[8:], segNo*segSize)    // page address
	le.PutUint32(h[16:], 0)               // rem_len
	le.PutUint64(h[24:], sysid)           // system identifier
	le.PutUint32(h[32:], uint32(segSize)) // segment size
	le.PutUint32(h[36:], 8192)            // block size
	return h
}

// fakeSegment writes a valid-looking 16 MiB segment segNo of system sysid
// into dir under its proper name; seed varies the bytes after the header.
func fakeSegment(t *testing.T, dir string, segNo, sysid uint64, seed byte) string {
	t.Helper()
	name := "00000001" + "00000000" + hex8(segNo)
	return writeSegment(t, filepath.Join(dir, name), segNo, sysid, seed)
}

func writeSegment(t *testing.T, path string, segNo, sysid uint64, seed byte) string {
	t.Helper()
	b := make([]byte, segSize)
	for i := range b {
		b[i] = byte(i>>9) ^ seed
	}
	copy(b, segmentHeader(segNo, sysid))
	writeFile(t, path, b)
	return path
}

func hex8(n uint64) string {
	const digits = "0123456789ABCDEF"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[n&0xF]
		n >>= 4
	}
	return string(b[:])
}

// generateKey runs `keys generate` and returns the identity file and its
// recipient.
func generateKey(t *testing.T, dir, name string) (keyFile, recipient string) {
	t.Helper()
	keyFile = filepath.Join(dir, name)
	r := pgward(t, "keys", "generate", "--output", keyFile)
	if r.code != 0 {
		t.Fatalf("keys generate: exit status %d: %s", r.code, r.stderr)
	}
	return keyFile, strings.TrimSpace(r.stdout)
}

func TestConfigPrecedence(t *testing.T) {
	const wal = "000000010000000000000001" // never opened: the repository URL fails first
	tests := []struct {
		name    string
		yaml    string            // config file contents; "" for no --config
		env     map[string]string // environment
		args    []string          // global flags before the command
		want    []string
		wantNot []string
	}{
		{
			name: "file only",
			yaml: "repo: yaml://x\n",
			want: []string{`unknown repository scheme "yaml"`},
		},
		{
			name:    "environment beats file",
			yaml:    "repo: yaml://x\n",
			env:     map[string]string{"PGWARD_REPO": "env://x"},
			want:    []string{`unknown repository scheme "env"`},
			wantNot: []string{`"yaml"`},
		},
		{
			name:    "flag beats environment and file",
			yaml:    "repo: yaml://x\n",
			env:     map[string]string{"PGWARD_REPO": "env://x"},
			args:    []string{"--repo", "flag://x"},
			want:    []string{`unknown repository scheme "flag"`},
			wantNot: []string{`"yaml"`, `"env"`},
		},
		{
			name:    "flag beats file",
			yaml:    "repo: yaml://x\n",
			args:    []string{"--repo", "flag://x"},
			want:    []string{`unknown repository scheme "flag"`},
			wantNot: []string{`"yaml"`},
		},
		{
			name:    "flag beats environment",
			env:     map[string]string{"PGWARD_REPO": "env://x"},
			args:    []string{"--repo", "flag://x"},
			want:    []string{`unknown repository scheme "flag"`},
			wantNot: []string{`"env"`},
		},
		{
			name: "environment only",
			env:  map[string]string{"PGWARD_REPO": "env://x"},
			want: []string{`unknown repository scheme "env"`},
		},
		{
			name: "file sets a boolean",
			yaml: "repo: yaml://x\nno-encryption: true\n",
			want: []string{`unknown repository scheme "yaml"`},
		},
		{
			name:    "environment false beats file true",
			yaml:    "repo: yaml://x\nno-encryption: true\n",
			env:     map[string]string{"PGWARD_NO_ENCRYPTION": "false"},
			want:    []string{"no recipient to encrypt to"},
			wantNot: []string{"unknown repository scheme"},
		},
		{
			name:    "flag false beats environment true",
			env:     map[string]string{"PGWARD_NO_ENCRYPTION": "true", "PGWARD_REPO": "env://x"},
			args:    []string{"--no-encryption=false"},
			want:    []string{"no recipient to encrypt to"},
			wantNot: []string{"unknown repository scheme"},
		},
		{
			name:    "file sets the cluster",
			yaml:    "repo: yaml://x\ncluster: -bad\n",
			want:    []string{`invalid cluster name "-bad"`},
			wantNot: []string{"unknown repository scheme"},
		},
		{
			name: "environment cluster beats file cluster",
			yaml: "repo: yaml://x\ncluster: -bad\n",
			env:  map[string]string{"PGWARD_CLUSTER": "prod"},
			want: []string{`unknown repository scheme "yaml"`},
		},
		{
			name: "file sets the log level",
			yaml: "repo: yaml://x\nlog-level: loud\n",
			want: []string{`invalid --log-level "loud"`},
		},
		{
			name: "flag log level beats file",
			yaml: "repo: yaml://x\nlog-level: loud\n",
			args: []string{"--log-level", "debug"},
			want: []string{`unknown repository scheme "yaml"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			dir := t.TempDir()
			var args []string
			if tt.yaml != "" {
				cfg := filepath.Join(dir, "pgward.yaml")
				writeFile(t, cfg, []byte(tt.yaml))
				args = append(args, "--config", cfg)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			args = append(args, tt.args...)
			if !strings.Contains(tt.yaml, "no-encryption") && tt.env["PGWARD_NO_ENCRYPTION"] == "" {
				args = append(args, "--no-encryption")
			}
			args = append(args, "wal-push", filepath.Join(dir, wal))
			pgward(t, args...).check(t, exitError, tt.want, tt.wantNot)
		})
	}
}

func TestConfigFromEnvironmentVariable(t *testing.T) {
	isolate(t)
	cfg := filepath.Join(t.TempDir(), "pgward.yaml")
	writeFile(t, cfg, []byte("repo: yaml://x\nno-encryption: true\n"))
	t.Setenv("PGWARD_CONFIG", cfg)
	pgward(t, "wal-push", seg3).check(t, exitError, []string{`unknown repository scheme "yaml"`}, nil)
}

func TestConfigFile(t *testing.T) {
	_, r1 := generateKey(t, t.TempDir(), "k1")
	_, r2 := generateKey(t, t.TempDir(), "k2")
	tests := []struct {
		name    string
		yaml    string
		code    int
		want    []string
		wantNot []string
	}{
		{
			name: "unknown key",
			yaml: "repo: yaml://x\nrpo: file:///tmp/x\n",
			code: exitError,
			want: []string{`pgward.yaml line 2: unknown key "rpo" (did you mean repo?)`, "see pgward --help"},
		},
		{
			name: "config is not a key of the file",
			yaml: "config: /etc/other.yaml\n",
			code: exitError,
			want: []string{`unknown key "config"`},
		},
		{
			name: "empty file",
			yaml: "",
			code: exitError,
			want: []string{"no repository"}, // read fine; nothing set
		},
		{
			name: "only a comment",
			yaml: "# nothing here yet\n",
			code: exitError,
			want: []string{"no repository"},
		},
		{
			name: "null value is ignored",
			yaml: "repo: yaml://x\ncluster:\n",
			code: exitError,
			want: []string{`unknown repository scheme "yaml"`},
		},
		{
			name: "recipient list",
			yaml: "repo: yaml://x\nrecipient:\n  - " + r1 + "\n  - " + r2 + "\n",
			code: exitError,
			// the sealer is built before the repository is opened
			want: []string{`unknown repository scheme "yaml"`},
		},
		{
			name: "recipient list with a bad entry",
			yaml: "repo: yaml://x\nrecipient: [" + r1 + ", age1nope]\n",
			code: exitError,
			want: []string{`invalid recipient "age1nope"`},
		},
		{
			name: "not YAML",
			yaml: "repo: [yaml://x\n",
			code: exitError,
			want: []string{"config file", "pgward.yaml"},
		},
		{
			name: "not a mapping",
			yaml: "- repo\n- yaml://x\n",
			code: exitError,
			want: []string{"config file", "pgward.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			dir := t.TempDir()
			cfg := filepath.Join(dir, "pgward.yaml")
			writeFile(t, cfg, []byte(tt.yaml))
			args := []string{"--config", cfg}
			if !strings.Contains(tt.yaml, "recipient") {
				args = append(args, "--no-encryption")
			}
			args = append(args, "wal-push", filepath.Join(dir, seg3))
			pgward(t, args...).check(t, tt.code, tt.want, tt.wantNot)
		})
	}

	t.Run("missing file", func(t *testing.T) {
		isolate(t)
		cfg := filepath.Join(t.TempDir(), "absent.yaml")
		pgward(t, "--config", cfg, "--no-encryption", "--repo", "file:///x", "wal-push", seg3).
			check(t, exitError, []string{"config file", "absent.yaml", "no such file"}, nil)
	})
}

// A recipient list in the config file encrypts to every key in it.
func TestConfigRecipientListRoundTrip(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	k1, r1 := generateKey(t, dir, "k1")
	k2, r2 := generateKey(t, dir, "k2")
	_, repoURL := fileRepo(t)
	cfg := filepath.Join(dir, "pgward.yaml")
	writeFile(t, cfg, []byte("repo: "+repoURL+"\nrecipient:\n  - "+r1+"\n  - "+r2+"\n"))
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)

	pgward(t, "--config", cfg, "wal-push", src).check(t, exitOK, nil, nil)
	for _, key := range []string{k1, k2} {
		out := t.TempDir()
		dest := filepath.Join(out, "RECOVERYXLOG")
		pgward(t, "--config", cfg, "--identity-file", key, "wal-fetch", "--prefetch", "0", seg3, dest).
			check(t, exitOK, nil, nil)
		if !bytes.Equal(readFile(t, dest), readFile(t, src)) {
			t.Errorf("fetched with %s: content differs from the pushed segment", filepath.Base(key))
		}
	}
}

func TestWalPushBadInput(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	_, repoURL := fileRepo(t)
	_, recipient := generateKey(t, dir, "key")
	secretFile, _, err := seal.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	var secret string
	for _, line := range strings.Split(string(secretFile), "\n") {
		if strings.HasPrefix(line, "AGE-SECRET-KEY-") {
			secret = line
		}
	}
	if secret == "" {
		t.Fatal("no secret key in generated identity")
	}

	// A file named like a segment that holds no WAL.
	junk := filepath.Join(dir, seg3)
	writeFile(t, junk, []byte("this is not WAL\n"))
	// A file whose base name is not a WAL file name.
	notWALName := filepath.Join(dir, "postgresql.conf")
	writeFile(t, notWALName, []byte("archive_mode = on\n"))
	// Only the long page header of a 16 MiB segment.
	headerOnlyDir := t.TempDir()
	headerOnly := filepath.Join(headerOnlyDir, seg3)
	writeFile(t, headerOnly, segmentHeader(3, sysID))

	// A directory named like a segment.
	segDir := filepath.Join(t.TempDir(), "000000010000000000000007")
	if err := os.Mkdir(segDir, 0o700); err != nil {
		t.Fatal(err)
	}

	noEnc := []string{"--repo", repoURL, "--no-encryption"}
	tests := []struct {
		name    string
		args    []string
		want    []string
		wantNot []string
	}{
		{"unknown scheme", []string{"--repo", "ftp://host/x", "--no-encryption", "wal-push", junk},
			[]string{`unknown repository scheme "ftp"`, "file:///absolute/path", "s3://bucket/prefix"}, nil},
		{"repository without scheme", []string{"--repo", "/var/lib/pgward", "--no-encryption", "wal-push", junk},
			[]string{`repository "/var/lib/pgward" has no scheme`, "file:///absolute/path"}, nil},
		{"no repository", []string{"--no-encryption", "wal-push", junk},
			[]string{"no repository", "--repo", "PGWARD_REPO"}, nil},
		{"file URL with a host", []string{"--repo", "file://host/path", "--no-encryption", "wal-push", junk},
			[]string{`names host "host"`, "a file repository is local", "file:///absolute/path"}, nil},
		{"relative file URL", []string{"--repo", "file:relative/path", "--no-encryption", "wal-push", junk},
			[]string{"must name an absolute path", "file:relative/path"}, nil},
		{"no recipient", []string{"--repo", repoURL, "wal-push", junk},
			[]string{"no recipient", "--recipient", "PGWARD_RECIPIENT", "--no-encryption"}, nil},
		{"recipient and no-encryption", []string{"--repo", repoURL, "--recipient", recipient, "--no-encryption", "wal-push", junk},
			[]string{"both --recipient and --no-encryption"}, nil},
		{"invalid recipient", []string{"--repo", repoURL, "--recipient", "age1bogus", "wal-push", junk},
			[]string{`invalid recipient "age1bogus"`, "age1"}, nil},
		{"secret key as recipient", []string{"--repo", repoURL, "--recipient", secret, "wal-push", junk},
			[]string{"a secret key was given", "public key"},
			[]string{secret, secret[len("AGE-SECRET-KEY-1"):][:12]}},
		{"secret key among recipients", []string{"--repo", repoURL, "--recipient", recipient + "," + secret, "wal-push", junk},
			[]string{"a secret key was given"},
			[]string{secret, secret[len("AGE-SECRET-KEY-1"):][:12]}},
		{"not a WAL file name", append(noEnc, "wal-push", notWALName),
			[]string{`"postgresql.conf"`, "not a WAL file name"}, nil},
		{"missing file", append(noEnc, "wal-push", filepath.Join(dir, "000000010000000000000009")),
			[]string{"open WAL file", "no such file"}, nil},
		{"not a WAL segment", append(noEnc, "wal-push", junk),
			[]string{"not a WAL segment"}, nil},
		{"incomplete segment", append(noEnc, "wal-push", headerOnly),
			[]string{"40 bytes", "segment size of 16777216", "incomplete"}, nil},
		{"a directory", append(noEnc, "wal-push", segDir),
			[]string{"is not a regular file"}, nil},
		{"no argument", append(noEnc, "wal-push"),
			[]string{"wal-push takes one argument", "got 0"}, nil},
		{"two arguments", append(noEnc, "wal-push", junk, junk),
			[]string{"wal-push takes one argument", "got 2"}, nil},
		{"invalid cluster", append(noEnc, "--cluster", "-bad", "wal-push", junk),
			[]string{`invalid cluster name "-bad"`}, nil},
		{"cluster with a slash", append(noEnc, "--cluster", "a/b", "wal-push", junk),
			[]string{`invalid cluster name "a/b"`}, nil},
		{"invalid log level", append(noEnc, "--log-level", "loud", "wal-push", junk),
			[]string{`invalid --log-level "loud"`, "debug, info, warn or error"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pgward(t, tt.args...).check(t, exitError, tt.want, tt.wantNot)
		})
	}
	// Nothing above may have written to the repository.
	repoDir := strings.TrimPrefix(repoURL, "file://")
	if objs, _ := filepath.Glob(filepath.Join(repoDir, "*", "wal", "*")); len(objs) > 0 {
		t.Errorf("failed pushes left objects in the repository: %v", objs)
	}
}

func TestWalFetchBadInput(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	_, repoURL := fileRepo(t)
	notKey := filepath.Join(dir, "not-a-key")
	writeFile(t, notKey, []byte("hunter2-not-an-identity\n"))
	missingKey := filepath.Join(dir, "missing.key")

	tests := []struct {
		name    string
		args    []string // between the global flags and the destination
		global  []string
		want    []string
		wantNot []string
	}{
		{name: "missing identity file", global: []string{"--repo", repoURL, "--identity-file", missingKey},
			args: []string{seg3}, want: []string{"--identity-file", "missing.key", "no such file"}},
		{name: "unreadable identity file", global: []string{"--repo", repoURL, "--identity-file", notKey},
			args: []string{seg3}, want: []string{"--identity-file", "not an age identity file"},
			wantNot: []string{"hunter2"}},
		{name: "identity file is a directory", global: []string{"--repo", repoURL, "--identity-file", dir},
			args: []string{seg3}, want: []string{"--identity-file"}},
		{name: "bad name", global: []string{"--repo", repoURL},
			args: []string{"RECOVERYXLOG"}, want: []string{`"RECOVERYXLOG"`, "not a WAL file name"}},
		{name: "lower-case name", global: []string{"--repo", repoURL},
			args: []string{strings.ToLower("00000001000000000000000A")}, want: []string{"not a WAL file name"}},
		{name: "name with a directory", global: []string{"--repo", repoURL},
			args: []string{"../" + seg3}, want: []string{"not a WAL file name"}},
		{name: "unknown scheme", global: []string{"--repo", "ftp://host/x"},
			args: []string{seg3}, want: []string{`unknown repository scheme "ftp"`}},
		{name: "no repository", args: []string{seg3}, want: []string{"no repository", "--repo"}},
		{name: "file URL with a host", global: []string{"--repo", "file://host/path"},
			args: []string{seg3}, want: []string{`names host "host"`}},
		{name: "invalid cluster", global: []string{"--repo", repoURL, "--cluster", ".hidden"},
			args: []string{seg3}, want: []string{`invalid cluster name ".hidden"`}},
		{name: "invalid log level", global: []string{"--repo", repoURL, "--log-level", "loud"},
			args: []string{seg3}, want: []string{`invalid --log-level "loud"`}},
		{name: "prefetch out of range", global: []string{"--repo", repoURL},
			args: []string{"--prefetch", "257", seg3}, want: []string{"--prefetch 257", "want 0 to 256"}},
		{name: "negative prefetch", global: []string{"--repo", repoURL},
			args: []string{"--prefetch", "-1", seg3}, want: []string{"want 0 to 256"}},
		{name: "unknown command flag", global: []string{"--repo", repoURL},
			args: []string{"--bogus", seg3}, want: []string{"unknown option --bogus for 'pgward wal-fetch' (see 'pgward wal-fetch --help')"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			dest := filepath.Join(out, "RECOVERYXLOG")
			args := append(append([]string{}, tt.global...), "wal-fetch")
			if !slices.Contains(tt.args, "--prefetch") {
				args = append(args, "--prefetch", "0")
			}
			args = append(append(args, tt.args...), dest)
			pgward(t, args...).check(t, exitFatal, tt.want, tt.wantNot)
			assertEmptyDir(t, out)
		})
	}

	for _, args := range [][]string{{}, {seg3}, {seg3, filepath.Join(dir, "a"), filepath.Join(dir, "b")}} {
		t.Run("argument count "+string(rune('0'+len(args))), func(t *testing.T) {
			full := append([]string{"--repo", repoURL, "wal-fetch", "--prefetch", "0"}, args...)
			pgward(t, full...).check(t, exitFatal, []string{"wal-fetch takes two arguments", "(%f)", "(%p)"}, nil)
		})
	}
}

// wal-fetch must exit above 125 on every real error: PostgreSQL reads a
// lower status from restore_command as "not in the archive", ends recovery
// and promotes. That includes errors found before wal-fetch's own action
// runs: an unreadable or invalid --config file, or a bad global setting.
func TestWalFetchEarlyErrorsAreFatal(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	_, repoURL := fileRepo(t)
	badYAML := filepath.Join(dir, "bad.yaml")
	writeFile(t, badYAML, []byte("repo: ["+repoURL+"\n"))
	unknownKey := filepath.Join(dir, "unknown.yaml")
	writeFile(t, unknownKey, []byte("repo: "+repoURL+"\nrpo: x\n"))

	tests := []struct {
		name   string
		env    map[string]string
		global []string
		want   string
	}{
		{name: "missing config file", global: []string{"--config", filepath.Join(dir, "absent.yaml")}, want: "config file"},
		{name: "invalid config file", global: []string{"--config", badYAML}, want: "config file"},
		{name: "unknown config key", global: []string{"--config", unknownKey}, want: `unknown key "rpo"`},
		{name: "unknown global flag", global: []string{"--repo", repoURL, "--bogus"}, want: "unknown option --bogus for 'pgward'"},
		{name: "invalid boolean in environment", env: map[string]string{"PGWARD_NO_ENCRYPTION": "maybe"},
			global: []string{"--repo", repoURL}, want: "PGWARD_NO_ENCRYPTION"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			out := t.TempDir()
			args := append(append([]string{}, tt.global...), "wal-fetch", "--prefetch", "0", seg3, filepath.Join(out, "RECOVERYXLOG"))
			pgward(t, args...).check(t, exitFatal, []string{tt.want}, nil)
			assertEmptyDir(t, out)
		})
	}
}

func TestWalFetchNotInRepository(t *testing.T) {
	isolate(t)
	repoDir, repoURL := fileRepo(t)
	// An empty repository is an error: a wrong --repo or --cluster must not
	// pass for the end of the archive.
	out := t.TempDir()
	r := pgward(t, "--repo", repoURL, "wal-fetch", "--prefetch", "0", seg3, filepath.Join(out, "RECOVERYXLOG"))
	r.check(t, exitFatal, []string{"no cluster.json", "--cluster"}, nil)
	assertEmptyDir(t, out)

	os.MkdirAll(filepath.Join(repoDir, "main"), 0o700)
	writeFile(t, filepath.Join(repoDir, "main", "cluster.json"),
		[]byte(`{"format":1,"system_identifier":"7","pg_version":15,"wal_segment_size":16777216}`))
	key, _ := generateKey(t, t.TempDir(), "key")
	for _, name := range []string{seg3, "00000002.history", seg3 + ".partial", seg3 + ".00000028.backup"} {
		for _, identity := range []bool{false, true} {
			t.Run(name+map[bool]string{false: "", true: " with identity"}[identity], func(t *testing.T) {
				out := t.TempDir()
				dest := filepath.Join(out, "RECOVERYXLOG")
				args := []string{"--repo", repoURL}
				if identity {
					args = append(args, "--identity-file", key)
				}
				args = append(args, "wal-fetch", "--prefetch", "0", name, dest)
				r := pgward(t, args...)
				r.check(t, exitNotFound, nil, nil)
				if r.stdout != "" {
					t.Errorf("stdout = %q, want nothing", r.stdout)
				}
				assertEmptyDir(t, out)
			})
		}
	}
}

func TestKeysGenerate(t *testing.T) {
	isolate(t)
	out := filepath.Join(t.TempDir(), "pgward.key")
	r := pgward(t, "keys", "generate", "--output", out)
	r.check(t, exitOK, nil, nil)
	if strings.Count(r.stdout, "\n") != 1 || !strings.HasSuffix(r.stdout, "\n") || !strings.HasPrefix(r.stdout, "age1") {
		t.Fatalf("stdout = %q, want exactly one line with an age1… recipient", r.stdout)
	}
	recipient := strings.TrimSuffix(r.stdout, "\n")
	if r.stderr != "" {
		t.Errorf("stderr = %q, want nothing", r.stderr)
	}

	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode(); mode != 0o600 {
		t.Errorf("identity file mode = %v, want -rw-------", mode)
	}
	ids, err := seal.LoadIdentities(out)
	if err != nil {
		t.Fatalf("LoadIdentities: %v", err)
	}
	if len(ids) != 1 {
		t.Fatalf("identity file holds %d identities, want 1", len(ids))
	}
	content := readFile(t, out)
	if !bytes.Contains(content, []byte("public key: "+recipient+"\n")) {
		t.Errorf("identity file does not name its recipient %s", recipient)
	}
	// The identity must decrypt what is sealed to the printed recipient.
	rs, err := seal.ParseRecipients(recipient)
	if err != nil {
		t.Fatalf("printed recipient does not parse: %v", err)
	}
	var sealed bytes.Buffer
	w, err := seal.NewSealer(rs, seal.LevelFastest, 1).NewWriter(&sealed, seal.Claims{Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rd, err := seal.NewOpener(ids).NewReader(&sealed, seal.Expect{Size: -1})
	if err != nil {
		t.Fatalf("identity does not open what is sealed to the printed recipient: %v", err)
	}
	var plain bytes.Buffer
	if _, err := plain.ReadFrom(rd); err != nil || plain.String() != "hello" {
		t.Errorf("unsealed %q, %v; want hello", plain.String(), err)
	}
	rd.Close()

	// No temporary file is left next to the identity.
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("output directory holds %v, want only pgward.key", names)
	}
}

func TestKeysGenerateRefusesExistingFile(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "pgward.key")
	pgward(t, "keys", "generate", "--output", out).check(t, exitOK, nil, nil)
	before := readFile(t, out)

	r := pgward(t, "keys", "generate", "-o", out)
	r.check(t, exitError, []string{out, "already exists", "never overwrites"}, nil)
	if r.stdout != "" {
		t.Errorf("stdout = %q, want no recipient printed", r.stdout)
	}
	if after := readFile(t, out); !bytes.Equal(before, after) {
		t.Error("the existing identity file was changed")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("output directory holds %d entries, want 1 (no temporary file left)", len(entries))
	}
}

func TestKeysGenerateBadUsage(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"no output", []string{"keys", "generate"}, []string{"'pgward keys generate' needs --output"}},
		{"extra argument", []string{"keys", "generate", "--output", filepath.Join(dir, "k"), "extra"},
			[]string{"keys generate takes no arguments", `"extra"`}},
		{"directory missing", []string{"keys", "generate", "--output", filepath.Join(dir, "absent", "k")},
			[]string{"write key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pgward(t, tt.args...)
			r.check(t, exitError, tt.want, nil)
			if strings.HasPrefix(r.stdout, "age1") || strings.Contains(r.stdout, "\nage1") {
				t.Errorf("a recipient was printed: %q", r.stdout)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed runs left %d files in the output directory", len(entries))
	}
}

func TestVersionAndHelp(t *testing.T) {
	isolate(t)
	tests := []struct {
		name string
		args []string
		want []string // in stdout
	}{
		{"version", []string{"--version"}, []string{"pgward version "}},
		{"help", []string{"--help"}, []string{"archive_command", "restore_command", "wal-push", "wal-fetch",
			"keys", "--repo", "PGWARD_REPO", "a flag beats the environment, which beats the file"}},
		{"wal-push help", []string{"wal-push", "--help"}, []string{"archive_command", "wal-push %p", "Exit status 0",
			"nothing is overwritten", "--no-encryption"}},
		{"wal-fetch help", []string{"wal-fetch", "--help"}, []string{"restore_command", "wal-fetch %f %p", "Exit status",
			"255", "--prefetch", "--identity-file"}},
		{"keys generate help", []string{"keys", "generate", "--help"}, []string{"--output", "0600", "age1", "recipient"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := pgward(t, tt.args...)
			if r.code != exitOK {
				t.Errorf("exit status %d, want 0; stderr: %s", r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout does not mention %q:\n%s", w, r.stdout)
				}
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q, want nothing", r.stderr)
			}
		})
	}
	t.Run("version is not empty", func(t *testing.T) {
		r := pgward(t, "--version")
		if v := strings.TrimSpace(strings.TrimPrefix(r.stdout, "pgward version ")); v == "" {
			t.Errorf("--version printed %q, want a version", r.stdout)
		}
	})
}

func TestRoundTripUnencrypted(t *testing.T) {
	isolate(t)
	repoDir, repoURL := fileRepo(t)
	src := fakeSegment(t, t.TempDir(), 3, sysID, 7)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	if _, err := os.Stat(filepath.Join(repoDir, "main", "wal", seg3+seal.SuffixPlain)); err != nil {
		t.Errorf("unencrypted object: %v", err)
	}
	out := t.TempDir()
	dest := filepath.Join(out, "RECOVERYXLOG")
	pgward(t, "--repo", repoURL, "wal-fetch", "--prefetch", "0", seg3, dest).check(t, exitOK, nil, nil)
	if !bytes.Equal(readFile(t, dest), readFile(t, src)) {
		t.Error("fetched segment differs from the pushed one")
	}
}

func TestRoundTripEncrypted(t *testing.T) {
	isolate(t)
	keys := t.TempDir()
	key, recipient := generateKey(t, keys, "restore.key")
	otherKey, _ := generateKey(t, keys, "other.key")
	repoDir, repoURL := fileRepo(t)
	walDir := t.TempDir()
	src := fakeSegment(t, walDir, 3, sysID, 1)
	srcBytes := readFile(t, src)
	object := filepath.Join(repoDir, "main", "wal", seg3+seal.SuffixEncrypted)

	push := func(t *testing.T, path string) result {
		t.Helper()
		return pgward(t, "--repo", repoURL, "--recipient", recipient, "wal-push", path)
	}
	// fetch runs wal-fetch into a fresh directory and returns the
	// destination path.
	fetch := func(t *testing.T, code int, want []string, global ...string) string {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		args := append([]string{"--repo", repoURL}, global...)
		args = append(args, "wal-fetch", "--prefetch", "0", seg3, dest)
		pgward(t, args...).check(t, code, want, nil)
		return dest
	}

	t.Run("push", func(t *testing.T) {
		push(t, src).check(t, exitOK, nil, nil)
		b := readFile(t, filepath.Join(repoDir, "main", "cluster.json"))
		var info map[string]any
		if err := json.Unmarshal(b, &info); err != nil {
			t.Fatalf("cluster.json: %v\n%s", err, b)
		}
		if got, ok := info["system_identifier"].(string); !ok || got != "7301234567890123456" {
			t.Errorf("cluster.json system_identifier = %#v, want the string \"7301234567890123456\"", info["system_identifier"])
		}
		if got := info["wal_segment_size"]; got != float64(segSize) {
			t.Errorf("cluster.json wal_segment_size = %v, want %d", got, segSize)
		}
		if got := info["pg_version"]; got != float64(15) {
			t.Errorf("cluster.json pg_version = %v, want 15", got)
		}
		if bytes.Contains(readFile(t, object), srcBytes[40:4096]) {
			t.Error("the stored object holds the segment in the clear")
		}
	})
	stored := readFile(t, object)

	t.Run("push again is idempotent", func(t *testing.T) {
		push(t, src).check(t, exitOK, nil, nil)
		if !bytes.Equal(readFile(t, object), stored) {
			t.Error("the stored object changed")
		}
	})

	t.Run("push again unencrypted is idempotent", func(t *testing.T) {
		pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
		assertAbsent(t, filepath.Join(repoDir, "main", "wal", seg3+seal.SuffixPlain))
	})

	t.Run("different content under the same name", func(t *testing.T) {
		changed := writeSegment(t, filepath.Join(t.TempDir(), seg3), 3, sysID, 2)
		push(t, changed).check(t, exitError, []string{seg3, "different content", "nothing was overwritten"}, nil)
		if !bytes.Equal(readFile(t, object), stored) {
			t.Error("the stored object changed")
		}
		// The same holds when the conflicting push is unencrypted.
		pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", changed).
			check(t, exitError, []string{"different content", "nothing was overwritten"}, nil)
		assertAbsent(t, filepath.Join(repoDir, "main", "wal", seg3+seal.SuffixPlain))
	})

	t.Run("segment of another system", func(t *testing.T) {
		foreign := fakeSegment(t, t.TempDir(), 4, otherSysID, 1)
		push(t, foreign).check(t, exitError, []string{seg4, "different PostgreSQL system", "7309999999999999999",
			"7301234567890123456", "--cluster"}, nil)
		if m, _ := filepath.Glob(filepath.Join(repoDir, "main", "wal", seg4+"*")); len(m) != 0 {
			t.Errorf("refused segment was stored: %v", m)
		}
		// Under its own cluster it is welcome.
		pgward(t, "--repo", repoURL, "--recipient", recipient, "--cluster", "restored-copy", "wal-push", foreign).
			check(t, exitOK, nil, nil)
	})

	t.Run("name does not match content", func(t *testing.T) {
		misnamed := writeSegment(t, filepath.Join(t.TempDir(), "000000010000000000000005"), 3, sysID, 1)
		push(t, misnamed).check(t, exitError, []string{"the name does not match the content"}, nil)
	})

	t.Run("fetch", func(t *testing.T) {
		dest := fetch(t, exitOK, nil, "--identity-file", key)
		if !bytes.Equal(readFile(t, dest), srcBytes) {
			t.Error("fetched segment differs from the pushed one")
		}
		entries, _ := os.ReadDir(filepath.Dir(dest))
		if len(entries) != 1 {
			t.Errorf("destination directory holds %d entries, want only the segment", len(entries))
		}
	})

	t.Run("fetch over an existing destination", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "RECOVERYXLOG")
		writeFile(t, dest, []byte("stale"))
		pgward(t, "--repo", repoURL, "--identity-file", key, "wal-fetch", "--prefetch", "0", seg3, dest).
			check(t, exitOK, nil, nil)
		if !bytes.Equal(readFile(t, dest), srcBytes) {
			t.Error("destination does not hold the fetched segment")
		}
	})

	t.Run("fetch without identity", func(t *testing.T) {
		dest := fetch(t, exitFatal, []string{"encrypted", "--identity-file"})
		assertEmptyDir(t, filepath.Dir(dest))
	})

	t.Run("fetch with identity from the environment", func(t *testing.T) {
		t.Setenv("PGWARD_IDENTITY_FILE", key)
		dest := fetch(t, exitOK, nil)
		if !bytes.Equal(readFile(t, dest), srcBytes) {
			t.Error("fetched segment differs from the pushed one")
		}
	})

	t.Run("fetch with another key", func(t *testing.T) {
		dest := fetch(t, exitFatal, []string{"different key"}, "--identity-file", otherKey)
		assertEmptyDir(t, filepath.Dir(dest))
	})

	t.Run("fetch of a truncated object", func(t *testing.T) {
		matches, err := filepath.Glob(filepath.Join(repoDir, "main", "wal", seg3+"*"))
		if err != nil || len(matches) != 1 {
			t.Fatalf("objects for %s: %v, %v; want exactly one", seg3, matches, err)
		}
		fi, err := os.Stat(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(matches[0], fi.Size()/2); err != nil {
			t.Fatal(err)
		}
		dest := fetch(t, exitFatal, []string{seg3, "corrupt or truncated"}, "--identity-file", key)
		assertEmptyDir(t, filepath.Dir(dest))
	})
}

func TestStreamBadInput(t *testing.T) {
	isolate(t)
	_, repoURL := fileRepo(t)
	_, recipient := generateKey(t, t.TempDir(), "key")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad slot", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--slot", "Bad-Slot", "--listen", ""}, []string{"invalid slot name"}},
		{"bad spool max", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--spool-max", "lots"}, []string{"--spool-max", "512MiB"}},
		{"no recipient", []string{"--repo", repoURL, "stream"}, []string{"no recipient"}},
		{"bad source", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--source", "host=x port=notaport"}, []string{"--source"}},
		{"bad backup schedule", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-source", "host=/tmp", "--backup-schedule", "at midnight", "--listen", "127.0.0.1:0"}, []string{"--backup-schedule: schedule \"at midnight\"", "five cron fields"}},
		{"bad backup zone", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-source", "host=/tmp", "--backup-timezone", "Mars/Olympus", "--listen", "127.0.0.1:0"}, []string{"time zone"}},
		{"bad dump schedule", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--dump-source", "host=/tmp", "--dump-schedule", "nightly", "--listen", "127.0.0.1:0"}, []string{"--dump-schedule: schedule \"nightly\"", "five cron fields"}},
		{"bad recipients map", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--dump-source", "host=/tmp", "--recipients-map", "/nonexistent.yaml", "--listen", "127.0.0.1:0"}, []string{"recipients map", "no such file"}},
		{"bad backup window", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-window", "25:00-06:00", "--listen", "127.0.0.1:0"}, []string{"--backup-window: window \"25:00-06:00\": want HH:MM-HH:MM"}},
		{"empty backup window", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-window", "06:00-06:00", "--listen", "127.0.0.1:0"}, []string{"empty or the whole day"}},
		{"window with a newline", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-window", "22:00\n-06:00", "--listen", "127.0.0.1:0"}, []string{"--backup-window"}},
		{"bad window end", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-window-end", "pause", "--listen", "127.0.0.1:0"}, []string{"--backup-window-end \"pause\": want finish, stop or throttle"}},
		{"dumps are not throttled", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--dump-source", "host=/tmp", "--dump-window-end", "throttle", "--listen", "127.0.0.1:0"}, []string{"--dump-window-end \"throttle\": want finish or stop"}},
		{"bad throttle rate", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-throttle-rate", "1kB", "--listen", "127.0.0.1:0"}, []string{"--backup-throttle-rate \"1kB\": want a rate per second of at least 64kB"}},
		{"bad upload limit", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-source", "host=/tmp", "--backup-upload-limit", "fast", "--listen", "127.0.0.1:0"}, []string{"--backup-upload-limit \"fast\""}},
		{"bad scheduled max rate", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-source", "host=/tmp", "--backup-max-rate", "1kB", "--listen", "127.0.0.1:0"}, []string{"--backup-max-rate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pgward(t, tc.args...).check(t, exitError, tc.want, nil)
		})
	}
}

func TestBackupBadInput(t *testing.T) {
	isolate(t)
	_, repoURL := fileRepo(t)
	_, recipient := generateKey(t, t.TempDir(), "key")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"bad checkpoint", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--checkpoint", "now"}, []string{"--checkpoint", "fast or spread"}},
		{"tiny part size", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--part-size", "1kB"}, []string{"--part-size", "1MiB"}},
		{"bad max rate", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--max-rate", "1kB"}, []string{"--max-rate"}},
		{"bad upload limit", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--upload-limit", "-5MiB"}, []string{"--upload-limit \"-5MiB\": want a rate per second"}},
		{"unknown server compression", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--server-compression", "lz4"}, []string{"--server-compression \"lz4\": want zstd or none"}},
		{"empty server compression", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--server-compression", ""}, []string{"--server-compression \"\": want zstd or none"}},
		{"server compression with a newline", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--server-compression", "zstd\nnone"}, []string{"--server-compression", "want zstd or none"}},
		{"negative workers", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--compress-workers", "-1"}, []string{"--compress-workers -1: want 0 to 64"}},
		{"huge workers", []string{"--repo", repoURL, "--recipient", recipient, "backup", "--compress-workers", "99999999999"}, []string{"compress-workers"}},
		{"scheduled backup workers", []string{"--repo", repoURL, "--recipient", recipient, "stream", "--backup-source", "host=/tmp", "--backup-compress-workers", "65", "--listen", "127.0.0.1:0"}, []string{"--backup-compress-workers 65: want 0 to 64"}},
		{"show without id", []string{"--repo", repoURL, "backup", "show"}, []string{"one backup id"}},
		{"show unknown", []string{"--repo", repoURL, "backup", "show", "20990101T000000Z"}, []string{"no such finished backup"}},
		{"show bad id", []string{"--repo", repoURL, "backup", "show", "../x"}, []string{"invalid backup id"}},
		{"delete unknown", []string{"--repo", repoURL, "backup", "delete", "20990101T000000Z"}, []string{"no such finished backup"}},
		{"pin unknown", []string{"--repo", repoURL, "backup", "pin", "20990101T000000Z"}, []string{"no such finished backup"}},
		{"unknown subcommand", []string{"--repo", repoURL, "backup", "frobnicate"}, []string{"unknown backup subcommand"}},
		{"unknown status", []string{"--repo", repoURL, "backup", "list", "--status", "done"}, []string{`--status "done": want finished, running, failed or refused`}},
		{"status with a newline", []string{"--repo", repoURL, "backup", "list", "--status", "finished\n"}, []string{"--status", "want finished"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pgward(t, tc.args...).check(t, exitError, tc.want, nil)
		})
	}
	r := pgward(t, "--repo", repoURL, "backup", "list", "--json")
	r.check(t, exitOK, nil, nil)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("backup list --json on an empty repository = %q, want []", r.stdout)
	}
}

// TestKeysGenerateSigning: --signing writes a 0600 signing key that
// parses, prints its public key, and never overwrites a file.
func TestKeysGenerateSigning(t *testing.T) {
	out := filepath.Join(t.TempDir(), "signing.key")
	r := pgward(t, "keys", "generate", "--signing", "--output", out)
	r.check(t, exitOK, nil, nil)
	pub := strings.TrimSpace(r.stdout)
	key, err := seal.LoadSigningKey(out)
	if err != nil {
		t.Fatal(err)
	}
	if key.Public().String() != pub || !strings.HasPrefix(pub, "pgwsig1") {
		t.Fatalf("printed %q, the file's public key is %s", pub, key.Public())
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %04o, want 0600", fi.Mode().Perm())
	}
	again := pgward(t, "keys", "generate", "--signing", "--output", out)
	again.check(t, exitError, []string{"already exists", "never overwrites"}, nil)
	// A signing key readable by everyone is refused, and not echoed.
	os.Chmod(out, 0o644)
	repo := "file://" + t.TempDir()
	bad := pgward(t, "--repo", repo, "--no-encryption", "--signing-key-file", out, "wal-push", filepath.Join(t.TempDir(), "000000010000000000000001"))
	bad.check(t, exitError, []string{"accessible to every user", "chmod o-rwx"}, nil)
	if strings.Contains(bad.stderr, "PGWARD-SIGNING-KEY-1") {
		t.Error("the secret key was echoed")
	}
}
