//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/pgward/pgward/internal/miniotest"
)

// A real cluster archives into MinIO through pgward under pgbench load;
// a base backup restored with restore_command = pgward wal-fetch replays
// every archived segment and holds exactly the committed rows.
func TestArchiveToS3AndRecover(t *testing.T) {
	for _, tool := range []string{"age", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			miniotest.Require(t, "the "+tool+" command (Debian package "+tool+")")
		}
	}
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	identity, recipient := keyPair(t, base)

	// The database host gets only the recipient; the restore host only
	// the identity.
	pushCfg := writeConfig(t, base, "push.yaml", "repo: s3://"+bucket+"/pg\nrecipient: "+recipient+"\n")
	fetchCfg := writeConfig(t, base, "fetch.yaml", "repo: s3://"+bucket+"/pg\nidentity-file: "+identity+"\n")

	primary := newPrimary(t, base, pgward+" --config "+pushCfg+" wal-push %p")
	primary.env = srv.Env()
	primary.start()

	pgbench := filepath.Join(pgBinDir, "pgbench")
	must(t, base, nil, pgbench, append(primary.connArgs(), "-i", "-s", "4", "-q", "postgres")...)
	restoreDir := filepath.Join(base, "restore")
	must(t, base, nil, filepath.Join(pgBinDir, "pg_basebackup"), append(primary.connArgs(), "-D", restoreDir, "-X", "none", "-c", "fast")...)

	must(t, base, nil, pgbench, append(primary.connArgs(), "-c", "4", "-j", "2", "-T", "12", "-n", "postgres")...)
	wantHistory := primary.psql("SELECT count(*) FROM pgbench_history")
	wantBalance := primary.psql("SELECT sum(abalance) FROM pgbench_accounts")
	last := primary.switchAndWaitArchived(2 * time.Minute)
	if failed := primary.psql("SELECT failed_count FROM pg_stat_archiver"); failed != "0" {
		t.Errorf("archive_command failed %s times under load; see %s", failed, primary.logFile())
	}

	archived := listWAL(t, srv, bucket, "pg/main/wal/")
	if len(archived) < 5 {
		t.Fatalf("only %d segments archived under load: %v", len(archived), archived)
	}

	restored := restoreCluster(t, base, restoreDir, pgward+" --config "+fetchCfg+" wal-fetch %f %p")
	restored.env = srv.Env()
	restored.start()
	restored.waitPromoted(3 * time.Minute)

	if got := restored.psql("SELECT count(*) FROM pgbench_history"); got != wantHistory {
		t.Errorf("restored pgbench_history has %s rows, the primary committed %s", got, wantHistory)
	}
	if got := restored.psql("SELECT sum(abalance) FROM pgbench_accounts"); got != wantBalance {
		t.Errorf("restored sum(abalance) = %s, primary = %s", got, wantBalance)
	}

	// Every archived segment from the backup's start on was replayed.
	label, err := os.ReadFile(filepath.Join(restoreDir, "backup_label.old"))
	if err != nil {
		t.Fatal(err)
	}
	startSeg := regexp.MustCompile(`\(file ([0-9A-F]{24})\)`).FindSubmatch(label)
	if startSeg == nil {
		t.Fatalf("no start segment in backup_label: %s", label)
	}
	log, _ := os.ReadFile(restored.logFile())
	replayed := map[string]bool{}
	for _, m := range regexp.MustCompile(`restored log file "([0-9A-F]{24})" from archive`).FindAllSubmatch(log, -1) {
		replayed[string(m[1])] = true
	}
	for _, seg := range archived {
		if seg >= string(startSeg[1]) && seg <= last && !replayed[seg] {
			t.Errorf("archived segment %s was not restored during recovery", seg)
		}
	}

	// An operator can read any object by hand: age, then zstd.
	obj := filepath.Join(base, last+".zst.age")
	c := minioClient(t, srv)
	if err := c.FGetObject(t.Context(), bucket, "pg/main/wal/"+last+".zst.age", obj, minio.GetObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	plain, err := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d -c`, "sh", identity, obj).Output()
	if err != nil {
		t.Fatalf("age -d | zstd -d: %v", err)
	}
	orig, err := os.ReadFile(filepath.Join(primary.dir, "pg_wal", last))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain, orig) {
		t.Fatalf("segment %s decrypted by hand (%d bytes) differs from the primary's pg_wal copy (%d bytes)", last, len(plain), len(orig))
	}
}

func writeConfig(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	own(t, p)
	return p
}

func minioClient(t *testing.T, srv *miniotest.Server) *minio.Client {
	t.Helper()
	c, err := minio.New(srv.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// listWAL returns the segment names stored under prefix, sorted.
func listWAL(t *testing.T, srv *miniotest.Server, bucket, prefix string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var out []string
	for oi := range minioClient(t, srv).ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(oi.Key, prefix), ".zst.age")
		if len(name) == 24 {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}
