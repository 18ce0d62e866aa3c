package main

// Tests of the configuration model (issue 13): options in any position,
// sections per command, per-cluster settings in the file and in conf.d,
// precedence, and durations with days.

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage/fs"
)

// putClusterBackup stores a finished backup's backup.json for cluster.
func putClusterBackup(t *testing.T, repoDir, cluster, id string, stop time.Time) {
	t.Helper()
	store, err := fs.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	layout := catalog.Layout{Cluster: cluster}
	sum := strings.Repeat("0123456789abcdef", 2)
	// It starts and stops in segment 3, the one the tests push.
	info, _ := json.Marshal(catalog.BackupInfo{Format: catalog.BackupFormat, ID: id, StartTime: stop.Add(-time.Minute), StopTime: stop,
		StartLSN: "0/3000028", StopLSN: "0/3000100", StartTimeline: 1, StopTimeline: 1,
		Archives: []catalog.BackupArchive{{Name: "base.tar", Parts: []catalog.BackupPart{{Key: layout.BackupPartKey(id, "base.tar", 0, ".zst"), Bytes: 1, StoredBytes: 1, Checksum: sum}}}},
		Manifest: catalog.BackupPart{Key: layout.BackupManifestKey(id, ".zst"), Bytes: 1, StoredBytes: 1, Checksum: sum}})
	if err := store.Put(t.Context(), layout.BackupInfoKey(id), bytes.NewReader(info), int64(len(info)), nil); err != nil {
		t.Fatal(err)
	}
}

// listedIDs runs backup list --json and returns the ids it printed.
func listedIDs(t *testing.T, args ...string) []string {
	t.Helper()
	r := pgward(t, args...)
	if r.code != 0 {
		t.Fatalf("pgward %s: exit status %d: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	var listed []struct{ ID string }
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatalf("pgward %s: not JSON: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
	var ids []string
	for _, b := range listed {
		ids = append(ids, b.ID)
	}
	return ids
}

func TestOptionsInAnyPosition(t *testing.T) {
	isolate(t)
	dir, repoURL := fileRepo(t)
	putClusterBackup(t, dir, "shop", "20261201T000000Z", time.Now().Add(-time.Hour))
	for _, args := range [][]string{
		{"--repo", repoURL, "--cluster", "shop", "backup", "list", "--json"},
		{"backup", "list", "--repo", repoURL, "--cluster", "shop", "--json"},
		{"backup", "--cluster=shop", "list", "--json", "--repo=" + repoURL},
		{"--repo", repoURL, "backup", "list", "-cluster", "shop", "--json"},
	} {
		if got := listedIDs(t, args...); !slices.Equal(got, []string{"20261201T000000Z"}) {
			t.Errorf("pgward %s listed %v, want the shop backup", strings.Join(args, " "), got)
		}
	}
	if got := listedIDs(t, "backup", "list", "--json", "--repo", repoURL); len(got) != 0 {
		t.Errorf("cluster main listed %v, want nothing", got)
	}
	// A boolean global after the command's argument, and after "--" an
	// argument that only looks like an option.
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)
	pgward(t, "wal-push", src, "--no-encryption", "--repo", repoURL).check(t, exitOK, nil, nil)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", "--", "--repo").check(t, exitError, []string{"--repo"}, nil)
	// A global without its value says so, in one line.
	r := pgward(t, "backup", "list", "--repo", repoURL, "--cluster")
	r.check(t, exitError, []string{"--cluster needs a value (see 'pgward --help')"}, []string{"USAGE", "Incorrect Usage"})
	if n := strings.Count(r.stderr, "\n"); n != 1 {
		t.Errorf("a usage error took %d lines:\n%s", n, r.stderr)
	}
}

func TestUsageErrorsAreOneLine(t *testing.T) {
	isolate(t)
	_, repoURL := fileRepo(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bakup"}, `unknown command "bakup" (did you mean backup?; see 'pgward --help')`},
		{[]string{"frobnicate"}, `unknown command "frobnicate": pgward's commands are wal-push, wal-fetch, stream, backup`},
		{[]string{"backup", "list", "--frob"}, "unknown option --frob for 'pgward backup list' (see 'pgward backup list --help')"},
		{[]string{"prune", "--window"}, "--window needs a value (see 'pgward prune --help')"},
		{[]string{"--bogus", "check"}, "unknown option --bogus for 'pgward' (see 'pgward --help')"},
	} {
		r := pgward(t, append([]string{"--repo", repoURL}, tc.args...)...)
		if r.code == exitOK || !strings.Contains(r.stderr, tc.want) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("pgward %s: exit %d, stdout %q, stderr %q; want one line with %q", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
	}
}

// A command's section, nested for a subcommand, sets its options; the
// environment and the flag beat it.
func TestConfigSections(t *testing.T) {
	isolate(t)
	dir := t.TempDir()
	fromFile := filepath.Join(dir, "from-file.key")
	cfg := filepath.Join(dir, "pgward.yaml")
	writeFile(t, cfg, []byte("keys:\n  generate:\n    output: "+fromFile+"\n"))
	pgward(t, "--config", cfg, "keys", "generate").check(t, exitOK, nil, nil)
	if _, err := os.Stat(fromFile); err != nil {
		t.Errorf("the section's output was not written: %v", err)
	}
	fromEnv := filepath.Join(dir, "from-env.key")
	t.Setenv("PGWARD_OUTPUT", fromEnv)
	pgward(t, "--config", cfg, "keys", "generate").check(t, exitOK, nil, nil)
	if _, err := os.Stat(fromEnv); err != nil {
		t.Errorf("the environment did not beat the section: %v", err)
	}
	fromFlag := filepath.Join(dir, "from-flag.key")
	pgward(t, "--config", cfg, "keys", "generate", "--output", fromFlag).check(t, exitOK, nil, nil)
	if _, err := os.Stat(fromFlag); err != nil {
		t.Errorf("the flag did not beat the environment: %v", err)
	}
}

// A value the option cannot take names where in the file it was written;
// the most specific place wins, and the environment beats them all.
func TestConfigErrorsNameThePlace(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		env        map[string]string
		args       []string
		want       []string
	}{
		{"a section", "repo: file:///nonexistent\ndump:\n  prune:\n    keep-daily: seven\n", nil, []string{"dump", "prune"},
			[]string{"pgward.yaml line 4 (section dump.prune): key keep-daily: want a whole number"}},
		{"the top for every command", "keep-daily: seven\n", nil, []string{"dump", "prune"},
			[]string{"pgward.yaml line 1: key keep-daily: want a whole number"}},
		{"a section beats the top", "keep-daily: seven\ndump: {prune: {keep-daily: eight}}\n", nil, []string{"dump", "prune"},
			[]string{"line 2 (section dump.prune): key keep-daily"}},
		{"a cluster beats the file", "dump: {prune: {keep-daily: seven}}\nclusters:\n  shop:\n    dump: {prune: {keep-daily: nine}}\n", nil,
			[]string{"--cluster", "shop", "dump", "prune"}, []string{"line 4 (cluster shop, section dump.prune): key keep-daily"}},
		{"a section is its command's only", "dump: {keep-daily: 7}\n", nil, []string{"dump", "prune"},
			[]string{"(section dump): unknown key \"keep-daily\" (it is an option of 'pgward dump prune': put it in that section, prune: {keep-daily: …})"}},
		{"the environment beats the file", "repo: file:///nonexistent/x\ndump: {prune: {keep-daily: seven}}\n", map[string]string{"PGWARD_KEEP_DAILY": "3"},
			[]string{"dump", "prune", "--dry-run"}, []string{"nonexistent"}},
		{"a duration with days", "check: {wal-warning: soon}\n", nil, []string{"check"},
			[]string{`line 1 (section check): key wal-warning: invalid duration "soon": want a duration such as 90s, 15m, 36h, 7d or 1d12h`}},
		{"the file names the cluster", "cluster: -bad\n", nil, []string{"backup", "list"}, []string{`invalid cluster name "-bad"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			isolate(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg := filepath.Join(t.TempDir(), "pgward.yaml")
			writeFile(t, cfg, []byte(tc.yaml))
			r := pgward(t, append([]string{"--config", cfg}, tc.args...)...)
			if r.code == exitOK {
				t.Fatalf("exit status 0, want an error: %s", r.stdout)
			}
			r.check(t, r.code, tc.want, []string{"seven", "eight"})
		})
	}
}

// A cluster's settings come from clusters: in the file or from
// conf.d/CLUSTER.yaml, chosen by --cluster or by the file's cluster: key.
func TestConfigPerCluster(t *testing.T) {
	isolate(t)
	shopDir, shopURL := fileRepo(t)
	blogDir, blogURL := fileRepo(t)
	_, mainURL := fileRepo(t)
	putClusterBackup(t, shopDir, "shop", "20261201T000000Z", time.Now().Add(-time.Hour))
	putClusterBackup(t, blogDir, "blog", "20261202T000000Z", time.Now().Add(-time.Hour))
	etc := t.TempDir()
	cfg := filepath.Join(etc, "pgward.yaml")
	writeFile(t, cfg, []byte("repo: "+mainURL+"\nclusters:\n  blog:\n    repo: "+blogURL+"\n"))
	if err := os.Mkdir(filepath.Join(etc, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(etc, "conf.d", "shop.yaml"), []byte("repo: "+shopURL+"\nbackup:\n  list:\n    json: true\n"))

	if got := listedIDs(t, "--config", cfg, "--cluster", "shop", "backup", "list"); !slices.Equal(got, []string{"20261201T000000Z"}) {
		t.Errorf("cluster shop (conf.d) listed %v", got)
	}
	if got := listedIDs(t, "--config", cfg, "backup", "list", "--cluster", "blog", "--json"); !slices.Equal(got, []string{"20261202T000000Z"}) {
		t.Errorf("cluster blog (clusters:) listed %v", got)
	}
	t.Setenv("PGWARD_CLUSTER", "shop")
	if got := listedIDs(t, "--config", cfg, "backup", "list"); len(got) != 1 {
		t.Errorf("PGWARD_CLUSTER=shop listed %v", got)
	}
	os.Unsetenv("PGWARD_CLUSTER")

	// The file's cluster: key chooses the cluster, and so its conf.d file.
	cfg2 := filepath.Join(etc, "shop-host.yaml")
	writeFile(t, cfg2, []byte("cluster: shop\n"))
	if got := listedIDs(t, "--config", cfg2, "backup", "list"); len(got) != 1 {
		t.Errorf("cluster: shop in the file listed %v", got)
	}
	// A cluster in both places is refused; so is a conf.d file that is not YAML.
	writeFile(t, filepath.Join(etc, "conf.d", "blog.yaml"), []byte("repo: "+blogURL+"\n"))
	pgward(t, "--config", cfg, "--cluster", "blog", "backup", "list").check(t, exitError, []string{"conf.d/blog.yaml", `cluster "blog" is also defined under clusters:`}, nil)
	writeFile(t, filepath.Join(etc, "conf.d", "shop.yaml"), []byte("repo: [\n"))
	pgward(t, "--config", cfg, "--cluster", "shop", "backup", "list").check(t, exitError, []string{"conf.d/shop.yaml"}, nil)
	// A cluster name is never a path.
	pgward(t, "--config", cfg, "--cluster", "../pgward", "backup", "list").check(t, exitError, []string{"invalid cluster name"}, nil)
	// --config-dir names another directory.
	other := t.TempDir()
	writeFile(t, filepath.Join(other, "shop.yaml"), []byte("repo: "+shopURL+"\n"))
	if got := listedIDs(t, "--config", cfg, "--config-dir", other, "--cluster", "shop", "backup", "list", "--json"); len(got) != 1 {
		t.Errorf("--config-dir listed %v", got)
	}
}

func TestDurationsTakeDays(t *testing.T) {
	isolate(t)
	_, repoURL := fileRepo(t)
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	for _, w := range []string{"7d", "1w", "1d12h", "168h"} {
		pgward(t, "--repo", repoURL, "prune", "--dry-run", "--window", w).check(t, exitOK, nil, nil)
	}
	pgward(t, "--repo", repoURL, "prune", "--dry-run", "--window", "7").
		check(t, exitError, []string{`--window "7": want a duration such as 90s, 15m, 36h, 7d or 1d12h`}, nil)
}

// Every option is an environment variable (but the typed-only ones), the
// same name means the same kind of value everywhere, and no command's
// option hides a global one.
func TestEveryOptionHasAnEnvironmentVariable(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})
	kinds := map[string]string{}
	globals := map[string]bool{}
	for _, f := range app.Flags {
		globals[flagName(f)] = true
	}
	var walk func(cmds []*cli.Command, path string)
	walk = func(cmds []*cli.Command, path string) {
		for _, cmd := range cmds {
			p := path + " " + cmd.Name
			for _, f := range cmd.Flags {
				name := flagName(f)
				if globals[name] {
					t.Errorf("%s: option --%s hides the global one", p, name)
				}
				env := flagEnv(f)
				if slices.Contains(typedOnly, name) {
					if env != "" {
						t.Errorf("%s: --%s is read from %s, but must be typed", p, name, env)
					}
					continue
				}
				if env == "" {
					t.Errorf("%s: --%s has no environment variable", p, name)
				}
				kind := strings.TrimPrefix(strings.TrimPrefix(fmtType(f), "*cli."), "Flag")
				if isDuration(f) {
					kind = "duration"
				}
				if k, ok := kinds[name]; ok && k != kind {
					t.Errorf("%s: --%s is a %s here and a %s elsewhere", p, name, kind, k)
				}
				kinds[name] = kind
			}
			walk(cmd.Subcommands, p)
		}
	}
	walk(app.Commands, "pgward")
}

func fmtType(f cli.Flag) string {
	switch f.(type) {
	case *cli.BoolFlag:
		return "bool"
	case *cli.StringFlag, *cli.StringSliceFlag:
		return "string"
	case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag:
		return "int"
	case *cli.GenericFlag:
		return "generic"
	}
	return "other"
}

// The example the package installs is a configuration pgward reads: every
// key known, every value of its kind, and the check section's durations
// and the backup section's sizes taken by their options.
func TestExampleConfigurationLoads(t *testing.T) {
	isolate(t)
	const example = "../../packaging/pgward.yaml.example"
	pgward(t, "--config", example, "completion", "bash").check(t, exitOK, nil, nil)
	// check applies its section, then fails on the example's repository.
	r := pgward(t, "--config", example, "--repo", "file:///nonexistent", "check")
	r.check(t, 3, nil, []string{"config file"})
}
