//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// psqlDB runs SQL in database db.
func (c *cluster) psqlDB(db, sql string) string {
	c.t.Helper()
	out := must(c.t, c.sock, nil, filepath.Join(pgBinDir, "psql"), "-X", "-h", c.sock, "-p", strconv.Itoa(c.port),
		"-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql)
	return strings.TrimSpace(out)
}

// tableChecksums returns, for every user table of db, a checksum of all
// its rows in a fixed order.
func tableChecksums(c *cluster, db string) map[string]string {
	c.t.Helper()
	tables := c.psqlDB(db, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%' ORDER BY 1`)
	sums := map[string]string{}
	for _, tbl := range strings.Fields(tables) {
		sums[tbl] = c.psqlDB(db, fmt.Sprintf("SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM %s t", tbl))
	}
	return sums
}

// waitReplayed waits until the replica has replayed all the primary wrote.
func waitReplayed(t *testing.T, primary, replica *cluster) {
	t.Helper()
	lsn := primary.psql("SELECT pg_current_wal_lsn()")
	waitFor(t, time.Minute, "replica replays to "+lsn, func() (bool, error) {
		out, err := replica.tryPSQL("SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'")
		return out == "t", err
	})
}

// TestDumpPerCustomerKeys dumps three customers' databases from a
// streaming replica, each sealed to its customer's key, restores them,
// drills them, and checks the failure paths a DBA meets: a pg_dump that
// fails, an old pg_dump, a pg_dump killed while replay is paused, a
// SIGTERM, and a corrupted dump.
func TestDumpPerCustomerKeys(t *testing.T) {
	base := testDir(t)
	primary := newPrimary(t, base, "/bin/true", "max_wal_senders = 10")
	primary.start()
	pgbench := filepath.Join(pgBinDir, "pgbench")
	for _, sql := range []string{"CREATE DATABASE shop", "CREATE DATABASE crm", "CREATE DATABASE blog_eu", "CREATE ROLE app LOGIN"} {
		primary.psql(sql)
	}
	must(t, base, nil, pgbench, append(primary.connArgs(), "-i", "-s", "5", "-q", "shop")...)
	primary.psqlDB("crm", `CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Leads" (id serial PRIMARY KEY, name text, note text, photo bytea, seen timestamptz);
		INSERT INTO "Sales"."Leads" (name, note, photo, seen)
		  SELECT 'Kund€ ' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE E'line one\nline two\ttab \\ backslash' END,
		         decode(md5(g::text), 'hex'), '2026-01-01'::timestamptz + g * interval '1 minute' FROM generate_series(1, 5000) g;
		CREATE TABLE secret (x int); INSERT INTO secret VALUES (42);
		CREATE TABLE measurements (at date, v int) PARTITION BY RANGE (at);
		CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
		INSERT INTO measurements SELECT '2026-01-01'::date + g % 300, g FROM generate_series(1, 3000) g;
		GRANT USAGE ON SCHEMA "Sales" TO app; GRANT SELECT ON ALL TABLES IN SCHEMA "Sales" TO app; GRANT SELECT ON measurements, measurements_2026 TO app;`)
	primary.psqlDB("blog_eu", `CREATE TABLE posts (id int PRIMARY KEY, body text); INSERT INTO posts SELECT g, repeat('word ', g % 50) FROM generate_series(1, 2000) g;
		SELECT lo_from_bytea(0, 'an attachment')`)
	replica := newReplicaOf(t, base, primary)
	waitReplayed(t, primary, replica)

	repo := "file://" + repoDir(t, base)
	idShop, keyShop := namedKeyPair(t, base, "shop.key")
	idCRM, keyCRM := namedKeyPair(t, base, "crm.key")
	idBlog, keyBlog := namedKeyPair(t, base, "blog.key")
	idOps, keyOps := namedKeyPair(t, base, "ops.key")
	mapFile := filepath.Join(base, "recipients.yaml")
	writeConfig(t, base, "recipients.yaml", fmt.Sprintf("default: %s\ndatabases:\n  shop: %s\n  crm: %s\n  \"blog_*\": [%s]\n", keyOps, keyShop, keyCRM, keyBlog))
	env := []string{"PGWARD_REPO=" + repo, "PGWARD_RECIPIENTS_MAP=" + mapFile}
	replicaSrc := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", base, replica.port)

	// A dump of every database from the replica, replay paused meanwhile.
	out := must(t, base, env, pgward, "dump", "--source", replicaSrc, "--pause-replay", "--json")
	var dumps []struct {
		ID, Kind, Database, Object string
		Tables                     int
		Rows                       int64
		RowEstimate                int64 `json:"row_estimate"`
		Recipients                 []string
		ReplayPaused               bool `json:"replay_paused"`
	}
	if err := json.Unmarshal([]byte(out), &dumps); err != nil {
		t.Fatalf("dump --json: %v\n%s", err, out)
	}
	got := map[string]int{}
	for i, d := range dumps {
		got[d.Kind+":"+d.Database] = i
	}
	for _, want := range []string{"globals:", "database:shop", "database:crm", "database:blog_eu", "database:postgres"} {
		if _, ok := got[want]; !ok {
			t.Fatalf("no %s dump in %s", want, out)
		}
	}
	if shop := dumps[got["database:shop"]]; shop.Tables != 4 || shop.Rows != 500000+5+50 || !shop.ReplayPaused || shop.RowEstimate == 0 {
		t.Errorf("shop dump recorded %+v", shop)
	}
	if crm := dumps[got["database:crm"]]; crm.Tables != 4 || crm.Rows != 5000+1+3000 {
		t.Errorf("crm dump recorded %+v", crm)
	}
	if state := replica.psql("SELECT pg_get_wal_replay_pause_state()"); state != "not paused" {
		t.Fatalf("replay left %q after the dump", state)
	}

	// Each customer's dump opens with their identity alone, by hand as
	// docs/operations.md says.
	repoPath := strings.TrimPrefix(repo, "file://")
	ids := map[string]string{"shop": idShop, "crm": idCRM, "blog_eu": idBlog, "postgres": idOps}
	for db, owner := range ids {
		d := dumps[got["database:"+db]]
		obj := filepath.Join(repoPath, "main", "dumps", db, d.ID, d.Object)
		for other, id := range ids {
			r := run(t, base, nil, "sh", "-c", fmt.Sprintf("age -d -i %s %s | zstd -d | pg_restore -l >/dev/null", id, obj))
			if (id == owner) != (r.code == 0) {
				t.Errorf("dump of %s opened with %s's identity: exit %d (%s)", db, other, r.code, r.stderr)
			}
		}
	}
	g := dumps[got["globals:"]]
	globals := must(t, base, nil, "sh", "-c", fmt.Sprintf("age -d -i %s %s | zstd -d", idOps, filepath.Join(repoPath, "main", "dumps", "%globals", g.ID, g.Object)))
	if !strings.Contains(globals, "CREATE ROLE app;") {
		t.Errorf("globals dump lacks role app:\n%s", globals)
	}

	// Restores into new databases reproduce every table's rows exactly.
	allIDs := filepath.Join(base, "all.key")
	writeConfig(t, base, "all.key", readFile(t, idShop)+readFile(t, idCRM)+readFile(t, idBlog)+readFile(t, idOps))
	os.Chmod(allIDs, 0o600) // a key readable by every user is refused
	primarySrc := fmt.Sprintf("host=%s port=%d user=postgres", base, primary.port)
	for _, db := range []string{"shop", "crm", "blog_eu"} {
		must(t, base, env, pgward, "--identity-file", ids[db], "dump", "restore", "--database", db, "--into", primarySrc+" dbname="+db+"_restored")
		want, have := tableChecksums(primary, db), tableChecksums(primary, db+"_restored")
		if len(want) == 0 || !mapsEqual(want, have) {
			t.Errorf("%s restored differs:\nwant %v\n got %v", db, want, have)
		}
	}
	if lo := primary.psqlDB("blog_eu_restored", "SELECT convert_from(lo_get(oid), 'UTF8') FROM pg_largeobject_metadata"); lo != "an attachment" {
		t.Errorf("large object restored as %q", lo)
	}
	r := run(t, base, env, pgward, "--identity-file", idShop, "dump", "restore", "--database", "shop", "--into", primarySrc+" dbname=shop_restored")
	if r.code != 1 || !strings.Contains(r.stderr, `database "shop_restored" already exists on `+base+`:`+strconv.Itoa(primary.port)+` and is not empty (`) ||
		!strings.Contains(r.stderr, "give --force to restore into it") {
		t.Errorf("restore into a non-empty database: exit %d, %s", r.code, r.stderr)
	}
	r = run(t, base, env, pgward, "--identity-file", idCRM, "dump", "restore", "--database", "shop", "--into", primarySrc+" dbname=shop_wrongkey")
	if r.code != 1 || !strings.Contains(r.stderr, "encrypted to a different key") {
		t.Errorf("restore with another customer's key: exit %d, %s", r.code, r.stderr)
	}
	if exists := primary.psql("SELECT count(*) FROM pg_database WHERE datname = 'shop_wrongkey'"); exists != "0" {
		t.Errorf("a failed restore left its new database behind")
	}
	primary.psqlDB("shop_restored", "DELETE FROM pgbench_branches")
	must(t, base, env, pgward, "--identity-file", idShop, "dump", "restore", "--database", "shop", "--force", "--into", primarySrc+" dbname=shop_restored")
	if n := primary.psqlDB("shop_restored", "SELECT count(*) FROM pgbench_branches"); n != "5" {
		t.Errorf("--force restore: %s branches, want 5", n)
	}

	// The same through MinIO: a dump, listed and restored exactly.
	srv := miniotest.Start(t)
	s3env := append(srv.Env(), "PGWARD_REPO=s3://"+srv.Bucket(t)+"/dumps", "PGWARD_RECIPIENTS_MAP="+mapFile)
	must(t, base, s3env, pgward, "dump", "--source", replicaSrc, "--database", "blog_eu")
	if out := must(t, base, s3env, pgward, "dump", "list"); !strings.Contains(out, "(globals)") || !strings.Contains(out, "blog_eu") {
		t.Errorf("dump list from MinIO:\n%s", out)
	}
	must(t, base, s3env, pgward, "--identity-file", idBlog, "dump", "restore", "--database", "blog_eu", "--into", primarySrc+" dbname=blog_from_s3")
	if want, have := tableChecksums(primary, "blog_eu"), tableChecksums(primary, "blog_from_s3"); !mapsEqual(want, have) {
		t.Errorf("blog_eu restored from MinIO differs:\nwant %v\n got %v", want, have)
	}

	// A drill on a throwaway cluster passes.
	out = must(t, base, env, pgward, "--identity-file", allIDs, "dump", "drill", "--database", "crm", "--json")
	var rep struct {
		OK         bool
		Database   string
		Tables     int
		TablesSeen int `json:"tables_restored"`
		Rows       int64
		RowsSeen   int64 `json:"rows_restored"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Database != "crm" || rep.TablesSeen != rep.Tables || rep.RowsSeen != 8001 {
		t.Errorf("drill: %v %s", err, out)
	}

	// A role that may not read every table: pg_dump's own error, and no
	// dump recorded for that database.
	before := listDumpIDs(t, repoPath, "crm")
	r = run(t, base, env, pgward, "dump", "--source", replicaSrc+" user=app", "--database", "crm", "--no-globals")
	if r.code != 1 || !strings.Contains(r.stderr, "permission denied for table secret") || !strings.Contains(r.stderr, "dump of crm failed: pg_dump failed") {
		t.Errorf("dump without rights: exit %d\n%s", r.code, r.stderr)
	}
	if after := listDumpIDs(t, repoPath, "crm"); !slices.Equal(before, after) {
		t.Errorf("a failed dump left objects: %v, before %v", after, before)
	}

	// An older pg_dump is refused, naming both versions and the package.
	oldBin := filepath.Join(base, "oldbin")
	os.Mkdir(oldBin, 0o755)
	writeConfig(t, oldBin, "pg_dump", "#!/bin/sh\necho 'pg_dump (PostgreSQL) 13.4'\n")
	os.Chmod(filepath.Join(oldBin, "pg_dump"), 0o755)
	r = run(t, base, env, pgward, "dump", "--source", replicaSrc, "--pg-bin", oldBin)
	if r.code != 1 || !strings.Contains(r.stderr, "pg_dump 13.4 ("+oldBin+"/pg_dump) is older than the server (PostgreSQL 15.") ||
		!strings.Contains(r.stderr, "apt-get install postgresql-client-15") {
		t.Errorf("old pg_dump: exit %d\n%s", r.code, r.stderr)
	}

	// pg_dump killed mid-run, and pgward itself told to stop: replay runs
	// again both times, and nothing is recorded.
	for _, victim := range []string{"pg_dump", "pgward"} {
		cmd := command(t.Context(), base, env, pgward, "dump", "--source", replicaSrc, "--database", "shop", "--no-globals", "--pause-replay")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var dumpPID int
		waitFor(t, time.Minute, "pg_dump running with replay paused", func() (bool, error) {
			dumpPID = childPID(cmd.Process.Pid, "pg_dump")
			return dumpPID > 0 && replica.psql("SELECT pg_get_wal_replay_pause_state()") == "paused", nil
		})
		if victim == "pg_dump" {
			syscall.Kill(dumpPID, syscall.SIGKILL)
		} else {
			cmd.Process.Signal(syscall.SIGTERM)
		}
		err := cmd.Wait()
		if err == nil {
			t.Fatalf("dump survived the %s kill:\n%s", victim, stderr.String())
		}
		if victim == "pg_dump" && !strings.Contains(stderr.String(), "dump of shop failed: pg_dump failed: signal: killed") {
			t.Errorf("kill of pg_dump reported as:\n%s", stderr.String())
		}
		if state := replica.psql("SELECT pg_get_wal_replay_pause_state()"); state != "not paused" {
			t.Fatalf("after the %s kill, replay is %q", victim, state)
		}
		primary.psqlDB("shop", "INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, "+strconv.Itoa(len(victim))+")")
		waitReplayed(t, primary, replica)
		if n := listDumpIDs(t, repoPath, "shop"); len(n) != 1 {
			t.Errorf("after the %s kill, shop has dumps %v", victim, n)
		}
	}

	// A corrupted dump fails the drill loudly: exit 1, the report, the
	// metric and a notification.
	var mu sync.Mutex
	var notices []map[string]string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n map[string]string
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &n)
		mu.Lock()
		notices = append(notices, n)
		mu.Unlock()
	}))
	defer hook.Close()
	shop := dumps[got["database:shop"]]
	obj := filepath.Join(repoPath, "main", "dumps", "shop", shop.ID, shop.Object)
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(obj, data, 0o600); err != nil {
		t.Fatal(err)
	}
	own(t, obj)
	metrics := filepath.Join(base, "drill.prom")
	r = run(t, base, env, pgward, "--identity-file", allIDs, "dump", "drill", "--database", "shop", "--notify-url", hook.URL, "--metrics-file", metrics)
	if r.code != 1 || !strings.Contains(r.stdout, "drill FAILED: dump "+shop.ID+" of shop") || !strings.Contains(r.stdout, "corrupt") {
		t.Errorf("drill of a corrupted dump: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if m := readFile(t, metrics); !strings.Contains(m, "pgward_dump_drill_ok 0") || !strings.Contains(m, "pgward_dump_drill_failures_total 1") {
		t.Errorf("drill metrics:\n%s", m)
	}
	mu.Lock()
	if len(notices) != 1 || notices[0]["job"] != "dump-drill" || !strings.Contains(notices[0]["error"], "corrupt") {
		t.Errorf("notifications: %v", notices)
	}
	mu.Unlock()
	if n := replica.psql("SELECT count(*) FROM pg_database WHERE datname LIKE 'pgward_drill%'"); n != "0" {
		t.Errorf("%s scratch databases left", n)
	}
}

// childPID finds the child of parent running program.
func childPID(parent int, program string) int {
	// Each thread has its own children: Go forks from any of them.
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", parent))
	var all []string
	for _, f := range files {
		data, _ := os.ReadFile(f)
		all = append(all, strings.Fields(string(data))...)
	}
	for _, f := range all {
		pid, _ := strconv.Atoi(f)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) == program {
			return pid
		}
	}
	return 0
}

// listDumpIDs lists the dump directories of database db, finished or not.
func listDumpIDs(t *testing.T, repoPath, db string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(repoPath, "main", "dumps", db))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Name())
	}
	return ids
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestDumpRetention makes 400 nightly dumps on simulated days and prunes
// them to exactly 7 daily, 4 weekly and 12 monthly.
func TestDumpRetention(t *testing.T) {
	base := testDir(t)
	primary := newPrimary(t, base, "/bin/true")
	primary.start()
	primary.psql("CREATE DATABASE tiny")
	primary.psqlDB("tiny", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
	_, key := namedKeyPair(t, base, "k.key")
	repoPath := repoDir(t, base)
	env := []string{"PGWARD_REPO=file://" + repoPath, "PGWARD_RECIPIENT=" + key}
	src := fmt.Sprintf("host=%s port=%d user=postgres dbname=postgres", base, primary.port)
	berlin, _ := time.LoadLocation("Europe/Berlin")
	first := time.Date(2025, 10, 1, 0, 5, 0, 0, berlin)
	const days = 400
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	errs := make(chan string, days)
	for d := range days {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			at := first.AddDate(0, 0, d).Format(time.RFC3339)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := command(ctx, base, append(env, "PGWARD_TEST_NOW="+at, "PGWARD_LOG_LEVEL=warn"), pgward, "dump", "--source", src, "--database", "tiny", "--no-globals")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Sprintf("day %s: %v: %s", at, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if n := len(listDumpIDs(t, repoPath, "tiny")); n != days {
		t.Fatalf("%d dumps made, want %d", n, days)
	}
	last := first.AddDate(0, 0, days-1).Add(time.Hour).Format(time.RFC3339)
	pruneEnv := append(env, "PGWARD_TEST_NOW="+last)
	var dry struct{ Kept, Deleted []struct{ ID, Reason string } }
	if err := json.Unmarshal([]byte(must(t, base, pruneEnv, pgward, "dump", "prune", "--dry-run", "--json")), &dry); err != nil {
		t.Fatal(err)
	}
	if n := len(listDumpIDs(t, repoPath, "tiny")); n != days {
		t.Fatalf("--dry-run deleted: %d dumps left", n)
	}
	var res struct{ Kept, Deleted []struct{ ID, Reason string } }
	if err := json.Unmarshal([]byte(must(t, base, pruneEnv, pgward, "dump", "prune", "--json")), &res); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, k := range res.Kept {
		count[strings.Fields(k.Reason)[0]]++
	}
	if count["daily"] != 7 || count["weekly"] != 4 || count["monthly"] != 12 || len(res.Kept) != 23 || len(res.Deleted) != days-23 {
		t.Fatalf("prune kept %v (%d), deleted %d", count, len(res.Kept), len(res.Deleted))
	}
	if len(dry.Kept) != len(res.Kept) || len(dry.Deleted) != len(res.Deleted) {
		t.Errorf("dry run said kept %d/deleted %d, prune did %d/%d", len(dry.Kept), len(dry.Deleted), len(res.Kept), len(res.Deleted))
	}
	left := listDumpIDs(t, repoPath, "tiny")
	var listed []struct{ ID string }
	json.Unmarshal([]byte(must(t, base, env, pgward, "dump", "list", "--database", "tiny", "--json")), &listed)
	if len(left) != 23 || len(listed) != 23 {
		t.Fatalf("%d dump directories and %d listed after prune, want 23", len(left), len(listed))
	}
	// A second prune on the same day deletes nothing.
	if out := must(t, base, pruneEnv, pgward, "dump", "prune"); !strings.Contains(out, "kept 23 dumps, deleted 0, 0 unfinished") {
		t.Errorf("second prune: %s", out)
	}
}
