package main

// Tests of the one retention policy (issue 13): stored once in the
// repository, read by check, prune, backup delete and dump prune, and
// never overridden by a command that says otherwise.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/seal"
)

type shownPolicy struct {
	Cluster       string `json:"cluster"`
	Stored        bool   `json:"stored"`
	WindowSeconds int64  `json:"window_seconds"`
	KeepDaily     int    `json:"keep_daily"`
	KeepWeekly    int    `json:"keep_weekly"`
	KeepMonthly   int    `json:"keep_monthly"`
	DumpTimezone  string `json:"dump_timezone"`
}

func showPolicy(t *testing.T, args ...string) shownPolicy {
	t.Helper()
	r := pgward(t, append(args, "retention", "show", "--json")...)
	if r.code != 0 {
		t.Fatalf("retention show: exit %d: %s", r.code, r.stderr)
	}
	var p shownPolicy
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("retention show --json: %v\n%s", err, r.stdout)
	}
	return p
}

func TestRetentionPolicyIsDefinedOnce(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	global := []string{"--repo", repoURL}
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)

	if p := showPolicy(t, global...); p.Stored || p.WindowSeconds != 7*86400 || p.KeepDaily != 7 || p.KeepWeekly != 4 || p.KeepMonthly != 12 || p.DumpTimezone != "Europe/Berlin" {
		t.Errorf("with none stored: %+v, want the defaults", p)
	}
	// Without a stored policy every command takes its own option.
	pgward(t, append(global, "prune", "--dry-run", "--retention-window", "14d")...).check(t, exitOK, nil, nil)
	pgward(t, append(global, "prune", "--dry-run", "--window", "3d")...).check(t, exitOK, nil, nil)

	pgward(t, append(global, "retention", "set", "--retention-window", "14d", "--keep-daily", "10")...).
		check(t, exitOK, nil, nil)
	if p := showPolicy(t, global...); !p.Stored || p.WindowSeconds != 14*86400 || p.KeepDaily != 10 || p.KeepWeekly != 4 {
		t.Errorf("after set: %+v", p)
	}
	if r := pgward(t, append(global, "retention", "show")...); !strings.Contains(r.stdout, "point-in-time recovery window  14d") {
		t.Errorf("retention show: %q", r.stdout)
	}
	// A set changes only what it names.
	pgward(t, append(global, "retention", "set", "--keep-monthly", "24")...).check(t, exitOK, nil, nil)
	if p := showPolicy(t, global...); p.WindowSeconds != 14*86400 || p.KeepDaily != 10 || p.KeepMonthly != 24 {
		t.Errorf("after a second set: %+v", p)
	}

	// Now the stored policy decides: agreeing options pass, others are refused.
	pgward(t, append(global, "prune", "--dry-run")...).check(t, exitOK, nil, nil)
	pgward(t, append(global, "prune", "--dry-run", "--retention-window", "336h")...).check(t, exitOK, nil, nil)
	for _, args := range [][]string{
		{"prune", "--dry-run", "--window", "7d"},
		{"check", "--retention-window", "7d"},
		{"backup", "delete", "--retention-window", "7d", "20260101T000000Z"},
		{"dump", "prune", "--dry-run", "--keep-daily", "7"},
	} {
		r := pgward(t, append(global, args...)...)
		if r.code == exitOK || !strings.Contains(r.stderr, "the retention policy stored in the repository decides") || !strings.Contains(r.stderr, "'pgward retention set'") {
			t.Errorf("pgward %s: exit %d, %q; want refused, naming the stored policy", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// From the environment (PGWARD_KEEP_DAILY left in a unit file) or the
	// config file, a disagreeing option is warned about and ignored: the
	// policy decides, and a sidecar does not stop over it.
	t.Setenv("PGWARD_KEEP_DAILY", "7")
	pgward(t, append(global, "dump", "prune", "--dry-run")...).check(t, exitOK, []string{`ignored="--keep-daily 7 (the policy says 10)"`}, nil)
	os.Unsetenv("PGWARD_KEEP_DAILY")
	cfg := filepath.Join(t.TempDir(), "pgward.yaml")
	writeFile(t, cfg, []byte("repo: "+repoURL+"\nretention-window: 3d\n"))
	pgward(t, "--config", cfg, "prune", "--dry-run").check(t, exitOK, []string{`ignored="--retention-window 3d (the policy says 14d)"`}, nil)
	// retention set takes only what is typed: not the file's 3d.
	pgward(t, "--config", cfg, "retention", "set", "--keep-weekly", "5").check(t, exitOK, nil, nil)
	if p := showPolicy(t, global...); p.WindowSeconds != 14*86400 || p.KeepWeekly != 5 {
		t.Errorf("retention set took a value nobody typed: %+v", p)
	}
	// Shortening the window is said twice.
	pgward(t, append(global, "retention", "set", "--retention-window", "10d")...).check(t, exitError, []string{"shortens the stored window of 14d", "--force"}, nil)
	if p := showPolicy(t, global...); p.WindowSeconds != 14*86400 {
		t.Errorf("a refused shortening changed the window: %+v", p)
	}

	// Values no one can mean are refused, and nothing is stored.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--retention-window", "30m"}, "retention window 30m0s: want at least 1h0m0s"},
		{[]string{"--retention-window", "0"}, "want at least"},
		{[]string{"--keep-daily", "-1"}, "keep-daily -1: want 0 to 10000"},
		{[]string{"--keep-daily", "0", "--keep-weekly", "0", "--keep-monthly", "0"}, "every dump would be deleted"},
		{[]string{"--timezone", "Mars/Olympus"}, `dump time zone "Mars/Olympus"`},
		{[]string{"--timezone", "../../etc/passwd"}, "dump time zone"},
	} {
		pgward(t, append(append(global, "retention", "set"), tc.args...)...).check(t, exitError, []string{tc.want}, nil)
	}
	if p := showPolicy(t, global...); p.WindowSeconds != 14*86400 || p.KeepDaily != 10 {
		t.Errorf("a refused set changed the policy: %+v", p)
	}

	// A policy.json that is not one stops prune and check: what is deleted
	// must not follow it.
	policyFile := filepath.Join(dir, "main", "policy.json")
	for _, forged := range []string{
		`{"format":1,"window_seconds":1,"keep_daily":1,"keep_weekly":0,"keep_monthly":0,"dump_timezone":"UTC","updated":"2026-12-01T00:00:00Z"}`,
		`{"format":2,"window_seconds":604800}`,
		`{"format":1,"window_seconds":604800,"keep_daily":7,"keep_weekly":4,"keep_monthly":12,"dump_timezone":"UTC","updated":"2026-12-01T00:00:00Z","delete_everything":true}`,
		`not json`,
	} {
		if err := os.WriteFile(policyFile, []byte(forged+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		pgward(t, append(global, "prune", "--dry-run")...).check(t, exitError, []string{"retention policy:", "main/policy.json"}, nil)
		pgward(t, append(global, "check")...).check(t, 3, []string{"main/policy.json"}, nil)
	}
}

// A signed policy is checked like every object: edited, or signed by a
// key no reader trusts, it is refused.
func TestRetentionPolicySigned(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	r := pgward(t, "keys", "generate", "--signing", "--output", keyFile)
	r.check(t, exitOK, nil, nil)
	pub := strings.TrimSpace(r.stdout)
	other := filepath.Join(t.TempDir(), "other.key")
	pgward(t, "keys", "generate", "--signing", "--output", other).check(t, exitOK, nil, nil)

	pgward(t, "--repo", repoURL, "--signing-key-file", keyFile, "retention", "set", "--retention-window", "10d").check(t, exitOK, nil, nil)
	if p := showPolicy(t, "--repo", repoURL, "--trusted-signer", pub); p.WindowSeconds != 10*86400 {
		t.Errorf("signed policy read back as %+v", p)
	}
	policyFile := filepath.Join(dir, "main", "policy.json")
	data, _ := os.ReadFile(policyFile)
	edited := bytes.Replace(data, []byte(`"window_seconds": 864000`), []byte(`"window_seconds": 3600`), 1)
	if bytes.Equal(edited, data) {
		t.Fatalf("policy.json does not hold the window as expected:\n%s", data)
	}
	os.WriteFile(policyFile, edited, 0o600)
	pgward(t, "--repo", repoURL, "--trusted-signer", pub, "retention", "show").check(t, exitError, []string{"main/policy.json", "differs from what was signed"}, nil)

	// Replacing a refused policy takes --force.
	pgward(t, "--repo", repoURL, "--trusted-signer", pub, "--signing-key-file", keyFile, "retention", "set", "--keep-daily", "3").
		check(t, exitError, []string{"differs from what was signed", "--force replaces it"}, nil)
	pgward(t, "--repo", repoURL, "--trusted-signer", pub, "--signing-key-file", keyFile, "retention", "set", "--force", "--keep-daily", "3").
		check(t, exitOK, []string{"replacing a stored retention policy that is refused"}, nil)
	if p := showPolicy(t, "--repo", repoURL, "--trusted-signer", pub); p.WindowSeconds != 7*86400 || p.KeepDaily != 3 {
		t.Errorf("replaced policy: %+v, want the defaults with keep-daily 3", p)
	}
	// With --trusted-policy-signer only those keys set the policy: a
	// writer's key (trusted for WAL and backups) is not enough.
	pgward(t, "--repo", repoURL, "--signing-key-file", other, "retention", "set", "--force", "--retention-window", "2h").check(t, exitOK, nil, nil)
	pgward(t, "--repo", repoURL, "--trusted-policy-signer", pub, "retention", "show").check(t, exitError, []string{"main/policy.json", "not a --trusted-signer"}, nil)
	pgward(t, "--repo", repoURL, "--signing-key-file", keyFile, "retention", "set", "--force", "--retention-window", "9d").check(t, exitOK, nil, nil)
	if p := showPolicy(t, "--repo", repoURL, "--trusted-policy-signer", pub); p.WindowSeconds != 9*86400 {
		t.Errorf("policy signed by the policy signer: %+v", p)
	}
	pgward(t, "--repo", repoURL, "--trusted-policy-signer", "pgwsig1nope", "retention", "show").check(t, exitError, []string{"--trusted-policy-signer"}, nil)
	// Signed by a key the reader does not trust.
	pgward(t, "--repo", repoURL, "--signing-key-file", other, "retention", "set", "--force", "--retention-window", "1h").check(t, exitOK, nil, nil)
	pgward(t, "--repo", repoURL, "--trusted-signer", pub, "prune", "--dry-run").check(t, exitError, []string{"not a --trusted-signer"}, nil)
	// Unsigned, where signatures are required.
	os.WriteFile(policyFile, []byte(`{"format":1,"window_seconds":3600,"keep_daily":1,"keep_weekly":0,"keep_monthly":0,"dump_timezone":"UTC","updated":"`+time.Now().UTC().Format(time.RFC3339)+`"}`+"\n"), 0o600)
	pgward(t, "--repo", repoURL, "--trusted-signer", pub, "prune", "--dry-run").check(t, exitError, []string{"main/policy.json"}, nil)
}

// keys usage counts, per recipient, the objects sealed to it and those
// only its identity opens, from what each object records.
func TestKeysUsage(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	k1, r1 := generateKey(t, t.TempDir(), "old")
	_, r2 := generateKey(t, t.TempDir(), "new")
	push := func(seg uint64, recipients string) {
		src := fakeSegment(t, t.TempDir(), seg, sysID, byte(seg))
		pgward(t, "--repo", repoURL, "--recipient", recipients, "wal-push", src).check(t, exitOK, nil, nil)
	}
	push(3, r1)        // before the rotation
	push(4, r1+","+r2) // during it
	push(5, r2)        // after
	// An object stored before pgward recorded recipients.
	old := filepath.Join(dir, "main", "wal", "000000010000000000000002.zst.age")
	if err := os.WriteFile(old, []byte("age"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := pgward(t, "--repo", repoURL, "--identity-file", k1, "keys", "usage", "--json")
	r.check(t, exitOK, nil, nil)
	var u struct {
		Cluster    string
		Recipients []struct {
			Recipient   string
			Fingerprint string
			Sealed      struct{ Objects int }
			Only        struct{ Objects int }
		}
		NotRecorded struct{ Objects int } `json:"not_recorded"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &u); err != nil {
		t.Fatalf("keys usage --json: %v\n%s", err, r.stdout)
	}
	got := map[string][2]int{}
	for _, rec := range u.Recipients {
		name := rec.Recipient
		if name == "" {
			name = "fp:" + rec.Fingerprint
		}
		got[name] = [2]int{rec.Sealed.Objects, rec.Only.Objects}
	}
	want := map[string][2]int{r1: {2, 1}, "fp:" + seal.Fingerprint(r2): {2, 1}}
	if len(got) != 2 || got[r1] != want[r1] || got["fp:"+seal.Fingerprint(r2)] != want["fp:"+seal.Fingerprint(r2)] || u.NotRecorded.Objects != 1 || u.Cluster != "main" {
		t.Errorf("keys usage: %+v (not recorded %d), want %v and 1 not recorded", got, u.NotRecorded.Objects, want)
	}
	text := pgward(t, "--repo", repoURL, "--recipient", r2, "keys", "usage")
	for _, w := range []string{r2, "fingerprint " + seal.Fingerprint(r1), "(not recorded)"} {
		if !strings.Contains(text.stdout, w) {
			t.Errorf("keys usage lacks %q:\n%s", w, text.stdout)
		}
	}
	pgward(t, "--repo", repoURL, "keys", "usage", "--jobs", "0").check(t, exitError, []string{"--jobs 0: want 1 to 64"}, nil)
}
