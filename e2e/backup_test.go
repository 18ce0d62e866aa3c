//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/pgward/pgward/internal/miniotest"
)

// TestBackupOnReplica takes a base backup on the streaming replica while
// pgbench writes on the primary (the replica compresses it), restores it by hand (age, zstd, tar, as
// docs/operations.md says), checks it with pg_verifybackup against the
// stored manifest, and recovers it with WAL from the repository. A backup
// killed with -9 leaves no backup.json and the next one succeeds; a second
// backup while one runs is refused by the lock.
func TestBackupOnReplica(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	identity, recipient := keyPair(t, base)
	cfg := writeConfig(t, base, "pgward.yaml", "repo: s3://"+bucket+"/pg\nrecipient: "+recipient+"\nidentity-file: "+identity+"\n")

	primary := newPrimary(t, base, pgward+" --config "+cfg+" wal-push %p", "max_wal_senders = 10")
	primary.env = srv.Env()
	primary.start()
	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(primary.connArgs(), "-i", "-s", "5", "-q", "postgres")...)
	replica := newReplicaOf(t, base, primary)
	source := fmt.Sprintf("host=%s port=%d user=postgres", base, replica.port)

	// Load on the primary, and segment switches so the WAL a backup needs
	// reaches the repository quickly.
	ctx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	load.Go(func() {
		for ctx.Err() == nil {
			command(ctx, base, nil, pgbench, append(primary.connArgs(), "-c", "2", "-T", "2", "-n", "postgres")...).Run()
			primary.tryPSQL("SELECT pg_switch_wal()")
		}
	})
	defer func() { stopLoad(); load.Wait() }()

	backup := func(extra ...string) *exec.Cmd {
		args := append([]string{"--config", cfg, "backup", "--source", source, "--checkpoint", "fast", "--wal-timeout", "2m", "--part-size", "16MiB", "--json"}, extra...)
		return command(context.Background(), base, srv.Env(), pgward, args...)
	}

	// A slow backup; a second one meanwhile is refused; then kill -9.
	// pgward compresses (the server sends plain tar), so its 16 MiB
	// parts are stored one by one.
	slow := backup("--max-rate", "2MiB", "--server-compression", "none")
	slowLog, _ := os.Create(filepath.Join(base, "slow-backup.log"))
	slow.Stdout, slow.Stderr = slowLog, slowLog
	if err := slow.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "the slow backup to store its first part", func() (bool, error) {
		return len(listKeys(t, srv, bucket, "pg/main/basebackups/", ".zst.age")) > 0, nil
	})
	second := run(t, base, srv.Env(), pgward, "--config", cfg, "backup", "--source", source)
	if second.code == 0 || !strings.Contains(second.stderr, "another base backup of this cluster is running") {
		t.Errorf("a second backup while one runs: exit %d, %q; want refused by the lock", second.code, second.stderr)
	}
	slow.Process.Signal(syscall.SIGKILL)
	slow.Wait()
	if got := listKeys(t, srv, bucket, "pg/main/basebackups/", "backup.json"); len(got) != 0 {
		t.Fatalf("a backup killed with -9 left %v", got)
	}

	// The next backup succeeds (breaking the dead holder's lock), while
	// pgbench writes.
	historyBefore := primary.psql("SELECT count(*) FROM pgbench_history")
	var out strings.Builder
	b := backup()
	b.Stdout = &out
	var errOut strings.Builder
	b.Stderr = &errOut
	if err := b.Run(); err != nil {
		t.Fatalf("backup after the killed one: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(errOut.String(), "breaking a backup lock whose holder is gone") {
		t.Errorf("the dead holder's lock was not reported as broken:\n%s", errOut.String())
	}
	var info struct {
		ID       string `json:"id"`
		StopLSN  string `json:"stop_lsn"`
		Archives []struct {
			Name        string `json:"name"`
			Compression string `json:"compression"`
			Parts       []struct {
				Key string `json:"key"`
			} `json:"parts"`
		} `json:"archives"`
		Manifest struct {
			Key string `json:"key"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(out.String()), &info); err != nil {
		t.Fatalf("backup --json printed %q: %v", out.String(), err)
	}
	// The server compressed it: one zstd stream, stored whole.
	if len(info.Archives) == 0 || info.Archives[0].Compression != "zstd" || len(info.Archives[0].Parts) != 1 {
		t.Fatalf("backup %s: want base.tar compressed by the server, in one part, got %+v", info.ID, info.Archives)
	}
	if got := listKeys(t, srv, bucket, "pg/main/basebackups/", "backup.json"); !slices.Equal(got, []string{"pg/main/basebackups/" + info.ID + "/backup.json"}) {
		t.Fatalf("finished backups in the repository: %v, want only %s", got, info.ID)
	}
	if during := primary.psql("SELECT count(*) FROM pgbench_history"); during == historyBefore {
		t.Fatalf("no pgbench transaction ran during the backup (%s rows before and after)", during)
	}
	stopLoad()
	load.Wait()
	wantHistory := primary.psql("SELECT count(*) FROM pgbench_history")
	primary.switchAndWaitArchived(time.Minute)

	list := run(t, base, srv.Env(), pgward, "--config", cfg, "backup", "list")
	if list.code != 0 || !strings.Contains(list.stdout, info.ID) {
		t.Errorf("backup list: exit %d, %q; want %s listed", list.code, list.stdout, info.ID)
	}

	// Restore by hand: age -d | zstd -d of each part in order, into tar.
	restoreDir := filepath.Join(base, "restore")
	os.Mkdir(restoreDir, 0o700)
	own(t, restoreDir)
	c := minioClient(t, srv)
	download := func(key string) string {
		local := filepath.Join(base, filepath.Base(key))
		if err := c.FGetObject(t.Context(), bucket, "pg/"+key, local, minio.GetObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		return local
	}
	var parts []string
	for _, p := range info.Archives[0].Parts {
		parts = append(parts, download(p.Key))
	}
	sort.Strings(parts)
	script := `set -e; for p in "$@"; do age -d -i "$KEY" "$p" | zstd -d -c; done | tar -x -C "$DEST"`
	unpack := exec.Command("sh", append([]string{"-c", script, "sh"}, parts...)...)
	unpack.Env = append(os.Environ(), "KEY="+identity, "DEST="+restoreDir)
	if out, err := unpack.CombinedOutput(); err != nil {
		t.Fatalf("restore by hand: %v\n%s", err, out)
	}
	manifest := filepath.Join(base, "backup_manifest")
	dec := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d -c > "$3"`, "sh", identity, download(info.Manifest.Key), manifest)
	if out, err := dec.CombinedOutput(); err != nil {
		t.Fatalf("decrypt the manifest: %v\n%s", err, out)
	}
	for _, p := range []string{restoreDir, manifest} {
		filepath.Walk(p, func(path string, _ os.FileInfo, _ error) error { own(t, path); return nil })
	}
	verify := run(t, base, nil, filepath.Join(pgBinDir, "pg_verifybackup"), "-n", "-m", manifest, restoreDir)
	if verify.code != 0 {
		t.Fatalf("pg_verifybackup: %s%s", verify.stdout, verify.stderr)
	}

	// The restored copy recovers with WAL from the repository.
	os.Remove(filepath.Join(restoreDir, "standby.signal"))
	restored := restoreCluster(t, base, restoreDir, pgward+" --config "+cfg+" wal-fetch %f %p", "archive_mode = off", "hot_standby = on")
	restored.env = srv.Env()
	restored.start()
	restored.waitPromoted(3 * time.Minute)
	if got := restored.psql("SELECT count(*) FROM pgbench_history"); got != wantHistory {
		t.Errorf("restored backup has %s pgbench_history rows, the primary %s", got, wantHistory)
	}

	// Retention needs the only backup: delete refuses; pin shows; --force
	// deletes every object of it.
	pw := func(args ...string) result {
		return run(t, base, srv.Env(), pgward, append([]string{"--config", cfg, "backup"}, args...)...)
	}
	if r := pw("delete", info.ID); r.code == 0 || !strings.Contains(r.stderr, "still needed") {
		t.Errorf("delete of the only backup: exit %d, %q; want refused", r.code, r.stderr)
	}
	if r := pw("pin", info.ID); r.code != 0 {
		t.Errorf("pin: %s", r.stderr)
	}
	if r := pw("list", "--json"); !strings.Contains(r.stdout, `"pinned": true`) {
		t.Errorf("list --json after pin: %s", r.stdout)
	}
	if r := pw("unpin", info.ID); r.code != 0 {
		t.Errorf("unpin: %s", r.stderr)
	}
	if r := pw("list", "--json"); !strings.Contains(r.stdout, `"pinned": false`) {
		t.Errorf("list --json after unpin: %s", r.stdout)
	}
	if n := len(listKeys(t, srv, bucket, "pg/main/basebackups/"+info.ID+"/", "")); n < 3 {
		t.Fatalf("backup %s holds %d objects before delete, want parts, manifest and backup.json", info.ID, n)
	}
	if r := pw("delete", "--force", info.ID); r.code != 0 {
		t.Errorf("delete --force: %s", r.stderr)
	}
	if left := listKeys(t, srv, bucket, "pg/main/basebackups/"+info.ID+"/", ""); len(left) != 0 {
		t.Errorf("delete --force left %v", left)
	}
}

// listKeys lists the keys under prefix that end in suffix.
func listKeys(t *testing.T, srv *miniotest.Server, bucket, prefix, suffix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out []string
	for oi := range minioClient(t, srv).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatalf("list %s: %v", prefix, oi.Err)
		}
		if strings.HasSuffix(oi.Key, suffix) {
			out = append(out, oi.Key)
		}
	}
	return out
}
