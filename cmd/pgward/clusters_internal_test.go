package main

// Tests of many clusters in one repository (issue 13): pgward clusters,
// and --cluster all with one result per cluster and the worst status.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// twoClusters makes a repository holding clusters shop and blog, each with
// one segment pushed and one backup; blog's backup is old.
func twoClusters(t *testing.T) (dir, repoURL string) {
	t.Helper()
	dir, repoURL = fileRepo(t)
	for i, name := range []string{"shop", "blog"} {
		src := fakeSegment(t, t.TempDir(), 3, sysID+uint64(i), 1)
		pgward(t, "--repo", repoURL, "--cluster", name, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	}
	putClusterBackup(t, dir, "shop", "20261201T000000Z", time.Now().Add(-time.Hour))
	putClusterBackup(t, dir, "blog", "20261101T000000Z", time.Now().Add(-30*24*time.Hour))
	return dir, repoURL
}

func TestClustersLists(t *testing.T) {
	isolate(t)
	_, repoURL := twoClusters(t)
	r := pgward(t, "--repo", repoURL, "clusters", "--json")
	r.check(t, exitOK, nil, nil)
	var rows []struct {
		Cluster      string `json:"cluster"`
		InRepository bool   `json:"in_repository"`
		Status       string `json:"status"`
		NewestWAL    *struct {
			Name string `json:"name"`
		} `json:"newest_wal"`
		NewestBackup *struct {
			ID string `json:"id"`
		} `json:"newest_backup"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("clusters --json: %v\n%s", err, r.stdout)
	}
	if len(rows) != 2 || rows[0].Cluster != "blog" || rows[1].Cluster != "shop" {
		t.Fatalf("clusters: %+v, want blog and shop", rows)
	}
	for _, row := range rows {
		if !row.InRepository || row.NewestWAL == nil || row.NewestWAL.Name != "000000010000000000000003" || row.NewestBackup == nil {
			t.Errorf("cluster %s: %+v", row.Cluster, row)
		}
	}
	if rows[0].NewestBackup.ID != "20261101T000000Z" || rows[0].Status != "CRITICAL" {
		t.Errorf("blog: backup %s, status %s; want its 30-day-old backup, CRITICAL", rows[0].NewestBackup.ID, rows[0].Status)
	}
	text := pgward(t, "--repo", repoURL, "clusters")
	text.check(t, exitOK, nil, nil)
	if lines := strings.Split(strings.TrimSpace(text.stdout), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "CLUSTER") ||
		!strings.HasPrefix(lines[1], "blog") || !strings.Contains(lines[2], "20261201T000000Z") {
		t.Errorf("clusters:\n%s", text.stdout)
	}
	empty, emptyURL := fileRepo(t)
	_ = empty
	if r := pgward(t, "--repo", emptyURL, "clusters", "--json"); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("an empty repository: exit %d, %q", r.code, r.stdout)
	}
}

func TestClusterAll(t *testing.T) {
	isolate(t)
	_, repoURL := twoClusters(t)

	// backup list: one result per cluster.
	r := pgward(t, "--repo", repoURL, "backup", "list", "--cluster", "all", "--json")
	r.check(t, exitOK, nil, nil)
	var listed []struct {
		Cluster    string `json:"cluster"`
		ExitStatus int    `json:"exit_status"`
		Output     []struct {
			ID string `json:"id"`
		} `json:"output"`
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
		t.Fatalf("backup list --cluster all --json: %v\n%s", err, r.stdout)
	}
	if len(listed) != 2 || listed[0].Cluster != "blog" || len(listed[0].Output) != 1 || listed[0].Output[0].ID != "20261101T000000Z" ||
		listed[1].Cluster != "shop" || len(listed[1].Output) != 1 || listed[1].Output[0].ID != "20261201T000000Z" {
		t.Errorf("backup list --cluster all: %+v", listed)
	}
	text := pgward(t, "--repo", repoURL, "--cluster", "all", "backup", "list")
	if !strings.Contains(text.stdout, "== cluster blog ==") || !strings.Contains(text.stdout, "== cluster shop ==") {
		t.Errorf("backup list --cluster all:\n%s", text.stdout)
	}

	// check: the worst status wins, and the first line says so.
	c := pgward(t, "--repo", repoURL, "--cluster", "all", "check", "--wal-warning", "1000d", "--wal-critical", "1001d")
	if c.code != 2 {
		t.Errorf("check --cluster all: exit %d, want 2 (blog's backup is 30 days old)\n%s%s", c.code, c.stdout, c.stderr)
	}
	lines := strings.Split(strings.TrimSpace(c.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PGWARD CRITICAL - 2 clusters: blog CRITICAL, shop OK") ||
		!strings.HasPrefix(lines[1], "blog: PGWARD CRITICAL") || !strings.HasPrefix(lines[2], "shop: PGWARD OK") {
		t.Errorf("check --cluster all:\n%s", c.stdout)
	}

	// A broken cluster: its status wins, named on its own line.
	cfg := filepath.Join(t.TempDir(), "pgward.yaml")
	writeFile(t, cfg, []byte("repo: "+repoURL+"\nclusters:\n  shop: {}\n  broken:\n    repo: file:///nonexistent/repo\n"))
	b := pgward(t, "--config", cfg, "--cluster", "all", "check", "--wal-warning", "1000d", "--wal-critical", "1001d")
	if b.code != 3 || !strings.Contains(b.stdout, "PGWARD UNKNOWN - 2 clusters: broken UNKNOWN, shop OK") || !strings.Contains(b.stderr, "cluster broken: ") {
		t.Errorf("check with a broken cluster: exit %d\n%s%s", b.code, b.stdout, b.stderr)
	}
	// The configured clusters are the ones --cluster all means.
	j := pgward(t, "--config", cfg, "--cluster", "all", "check", "--json")
	var checks []struct {
		Cluster    string `json:"cluster"`
		ExitStatus int    `json:"exit_status"`
		Errors     []string
	}
	if err := json.Unmarshal([]byte(j.stdout), &checks); err != nil || len(checks) != 2 || checks[0].Cluster != "broken" || checks[0].ExitStatus != 3 || len(checks[0].Errors) == 0 {
		t.Errorf("check --cluster all --json: %v %+v\n%s", err, checks, j.stdout)
	}

	// prune --dry-run on every cluster.
	pgward(t, "--repo", repoURL, "--cluster", "all", "prune", "--dry-run").check(t, exitOK, nil, nil)

	// Commands that act on one cluster refuse all.
	for _, args := range [][]string{{"restore", "--latest", "--pgdata", t.TempDir()}, {"backup", "show", "x"}, {"retention", "set", "--keep-daily", "3"}} {
		r := pgward(t, append([]string{"--repo", repoURL, "--cluster", "all"}, args...)...)
		if r.code == exitOK || !strings.Contains(r.stderr, "--cluster all names every cluster, which only check, prune, verify, backup list, dump list, retention show, keys usage take") {
			t.Errorf("pgward %s --cluster all: exit %d, %q", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// With nothing to go over, it says so.
	_, emptyURL := fileRepo(t)
	pgward(t, "--repo", emptyURL, "--cluster", "all", "backup", "list").check(t, exitError, []string{"names no cluster and the repository holds none"}, nil)
}

// conf.d files name clusters too.
func TestClusterAllFromConfD(t *testing.T) {
	isolate(t)
	_, repoURL := twoClusters(t)
	etc := t.TempDir()
	cfg := filepath.Join(etc, "pgward.yaml")
	writeFile(t, cfg, []byte("repo: "+repoURL+"\n"))
	os.Mkdir(filepath.Join(etc, "conf.d"), 0o755)
	writeFile(t, filepath.Join(etc, "conf.d", "shop.yaml"), []byte("backup: {list: {json: true}}\n"))
	writeFile(t, filepath.Join(etc, "conf.d", "not a cluster.yaml"), []byte("x: y\n"))
	writeFile(t, filepath.Join(etc, "conf.d", "README"), []byte("not yaml\n"))
	if got := configuredFromRun(t, "--config", cfg, "--cluster", "all", "backup", "list", "--json"); !slices.Equal(got, []string{"shop"}) {
		t.Errorf("--cluster all with conf.d/shop.yaml went over %v, want [shop]", got)
	}
}

func configuredFromRun(t *testing.T, args ...string) []string {
	t.Helper()
	r := pgward(t, args...)
	var out []struct{ Cluster string }
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("%v\n%s%s", err, r.stdout, r.stderr)
	}
	var names []string
	for _, o := range out {
		names = append(names, o.Cluster)
	}
	return names
}
