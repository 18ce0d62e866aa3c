//go:build e2e

package e2e

// Secrets never leak (issue 11, item 5): a password on a connection-string
// flag is refused, since ps shows a command line to every user of the host
// for the sidecar's whole life, while PGPASSWORD and the config file work;
// credentials in --s3-endpoint are refused without being echoed; a notify
// URL's token is not logged on the retries.

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgward/pgward/internal/miniotest"
)

// assertRefusal checks a run that must fail with every phrase of want and
// without secret anywhere in its output.
func assertRefusal(t *testing.T, r result, code int, secret string, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
		}
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("the output shows the secret:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
}

func TestSecretsConnectionPassword(t *testing.T) {
	a := newArchiving(t)
	const pw = "pw-Secr3t-e2e"
	a.primary.psql("CREATE ROLE pgward_pw LOGIN REPLICATION PASSWORD '" + pw + "'")
	// Password authentication for this role, ahead of initdb's trust lines.
	hba := filepath.Join(a.primary.dir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	lines := "local all pgward_pw scram-sha-256\nlocal replication pgward_pw scram-sha-256\n"
	if err := os.WriteFile(hba, append([]byte(lines), old...), 0o600); err != nil {
		t.Fatal(err)
	}
	a.primary.psql("SELECT pg_reload_conf()")
	conn := fmt.Sprintf("host=%s port=%d user=pgward_pw", a.base, a.primary.port)
	global := []string{"--repo", a.repo, "--recipient", a.recipient}
	spool := func(name string) string { return filepath.Join(a.base, "spool-"+name) }

	// On the command line: refused, in either form, before anything runs.
	for _, src := range []string{
		conn + " password=" + pw,
		fmt.Sprintf("postgres://pgward_pw:%s@/postgres?host=%s&port=%d", pw, a.base, a.primary.port),
	} {
		r := run(t, a.base, nil, pgward, append(global, "stream", "--listen", "", "--spool-dir", spool("refused"), "--source", src)...)
		assertRefusal(t, r, 1, pw, "--source holds a password (not shown)", "(ps)", "~/.pgpass", "PGPASSFILE", "PGPASSWORD", "PGWARD_SOURCE", "source: in the --config file")
		r = run(t, a.base, nil, pgward, append(global, "backup", "--source", src)...)
		assertRefusal(t, r, 1, pw, "--source holds a password", "PGPASSWORD", "PGWARD_BACKUP_SOURCE", "backup-source:")
		r = run(t, a.base, nil, pgward, append(global, "stream", "--listen", "", "--spool-dir", spool("refused"), "--source", conn, "--backup-source", src)...)
		assertRefusal(t, r, 1, pw, "--backup-source holds a password")
	}
	if _, err := os.Stat(spool("refused")); err == nil {
		t.Errorf("a refused sidecar created its spool directory")
	}
	// The password is needed: without it the server refuses the backup.
	r := run(t, a.base, nil, pgward, append(global, "backup", "--source", conn, "--wal-timeout", "30s")...)
	if r.code == 0 || !strings.Contains(r.stderr, "password") {
		t.Fatalf("a backup without the password: exit %d, %s; want the server's refusal", r.code, r.stderr)
	}

	// In PGPASSWORD the same password works, and ps never shows it.
	sc := startSidecar(t, a.base, []string{"PGPASSWORD=" + pw}, append(global, "stream", "--source", conn,
		"--slot", "pw_env", "--spool-dir", spool("env"), "--partial-interval", "1s", "--status-interval", "1s")...)
	waitFor(t, 2*time.Minute, "the sidecar (PGPASSWORD) to store WAL", func() (bool, error) {
		v, err := sc.metric("pgward_stream_stored_lsn")
		return err == nil && v > 0, err
	})
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sc.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cmdline), pw) {
		t.Errorf("the sidecar's command line shows the password: %q", cmdline)
	}
	sc.stop()

	// In the config file (a key named after the flag's environment
	// variable) too; the command line needs no --source at all.
	cfg := filepath.Join(a.base, "pgward-stream.yaml")
	yaml := fmt.Sprintf("repo: %s\nrecipient: %s\nsource: %q\n", a.repo, a.recipient, conn+" password="+pw)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	own(t, cfg)
	sc = startSidecar(t, a.base, nil, "--config", cfg, "stream", "--slot", "pw_config", "--spool-dir", spool("config"),
		"--partial-interval", "1s", "--status-interval", "1s")
	waitFor(t, 2*time.Minute, "the sidecar (config file) to store WAL", func() (bool, error) {
		v, err := sc.metric("pgward_stream_stored_lsn")
		return err == nil && v > 0, err
	})
	sc.stop()
	// And a backup whose source comes from the config file's backup-source.
	bcfg := filepath.Join(a.base, "pgward-backup.yaml")
	yaml = fmt.Sprintf("repo: %s\nrecipient: %s\nbackup-source: %q\n", a.repo, a.recipient, conn+" password="+pw)
	if err := os.WriteFile(bcfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	own(t, bcfg)
	must(t, a.base, nil, pgward, "--config", bcfg, "backup", "--checkpoint", "fast", "--wal-timeout", "2m")

	logs, _ := os.ReadFile(filepath.Join(a.base, "stream.log"))
	if strings.Contains(string(logs), pw) {
		t.Errorf("the sidecar's log shows the password")
	}
}

func TestSecretsS3EndpointCredentials(t *testing.T) {
	srv := miniotest.Start(t)
	bucket := srv.Bucket(t)
	base := testDir(t)
	repo := "s3://" + bucket + "/pg"
	env := srv.Env()
	must(t, base, env, pgward, "--repo", repo, "backup", "list") // the setup works

	withCreds := "http://" + srv.AccessKey + ":" + srv.SecretKey + "@" + srv.Endpoint
	want := []string{`--s3-endpoint "http://` + srv.Endpoint + `" holds credentials`, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
	// On the command line, in the environment, and in the config file.
	r := run(t, base, env, pgward, "--repo", repo, "--s3-endpoint", withCreds, "backup", "list")
	assertRefusal(t, r, 1, srv.SecretKey, want...)
	credEnv := []string{"PGWARD_S3_ENDPOINT=" + withCreds, "PGWARD_S3_INSECURE=true", "PGWARD_S3_PATH_STYLE=true"}
	r = run(t, base, credEnv, pgward, "--repo", repo, "backup", "list")
	assertRefusal(t, r, 1, srv.SecretKey, want...)
	cfg := filepath.Join(base, "pgward.yaml")
	if err := os.WriteFile(cfg, []byte("repo: "+repo+"\ns3-endpoint: "+withCreds+"\ns3-insecure: true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	own(t, cfg)
	r = run(t, base, nil, pgward, "--config", cfg, "backup", "list")
	assertRefusal(t, r, 1, srv.SecretKey, want...)
	// Without a scheme, where minio-go would quote it whole.
	r = run(t, base, env, pgward, "--repo", repo, "--s3-endpoint", srv.AccessKey+":"+srv.SecretKey+"@"+srv.Endpoint, "backup", "list")
	assertRefusal(t, r, 1, srv.SecretKey, "--s3-endpoint holds credentials (not shown)")

	// wal-fetch refuses with a fatal status (PostgreSQL must not promote),
	// and a restore writes nothing into the data directory.
	r = run(t, base, credEnv, pgward, "--repo", repo, "wal-fetch", "--prefetch", "0", "000000010000000000000001", filepath.Join(base, "RECOVERYXLOG"))
	assertRefusal(t, r, 255, srv.SecretKey, "holds credentials")
	pgdata := filepath.Join(base, "restored")
	r = run(t, base, credEnv, pgward, "--repo", repo, "restore", "--pgdata", pgdata, "--latest")
	assertRefusal(t, r, 1, srv.SecretKey, "holds credentials")
	filepath.WalkDir(pgdata, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, _ := os.ReadFile(path); strings.Contains(string(data), srv.SecretKey) {
				t.Errorf("%s holds the S3 secret", path)
			}
		}
		return nil
	})
}

func TestSecretsNotifyURLNotLogged(t *testing.T) {
	const token = "hook-T0ken-e2e"
	var mu sync.Mutex
	var seen []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError) // forces every retry
	}))
	defer hook.Close()
	base := testDir(t)
	identity, _ := keyPair(t, base)
	repo := "file://" + repoDir(t, base)

	// A drill of an empty repository fails at once and notifies.
	notifyURL := hook.URL + "/services/" + token + "?token=" + token
	r := run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "dump", "drill", "--notify-url", notifyURL)
	if r.code != 1 {
		t.Fatalf("drill of an empty repository: exit %d, want 1\n%s", r.code, r.stderr)
	}
	out := r.stdout + r.stderr
	if strings.Contains(out, token) {
		t.Errorf("the output shows the notify URL's token:\n%s", out)
	}
	host := strings.TrimPrefix(hook.URL, "http://")
	if n := strings.Count(r.stderr, "notification failed; retrying"); n != 4 || !strings.Contains(r.stderr, "url=http://"+host+"/…?…") ||
		!strings.Contains(r.stderr, "notification not delivered after 5 attempts") {
		t.Errorf("want 4 logged retries and the failure, naming http://%s/…?…:\n%s", host, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 5 || !strings.Contains(seen[0], "token="+token) {
		t.Errorf("the hook saw %q; want 5 posts to the full URL", seen)
	}

	// A URL that is not http(s) is refused at start, without the token.
	r = run(t, base, nil, pgward, "--repo", repo, "--identity-file", identity, "dump", "drill", "--notify-url", "hooks.example.com/"+token)
	assertRefusal(t, r, 1, token, "--notify-url is not an http or https URL (not shown")
}
