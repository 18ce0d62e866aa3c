// Package miniotest starts a real MinIO server for tests. The binary comes
// from PGWARD_MINIO_BIN, or the cache `make test` installs it into
// (~/.cache/pgward/bin/minio). Without one, tests skip, unless
// PGWARD_TEST_REQUIRE=1, which CI sets so that a skip cannot pass as success.
package miniotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Server is a running MinIO.
type Server struct {
	Endpoint  string // host:port, plain HTTP
	AccessKey string
	SecretKey string
	dataDir   string
	cmd       *exec.Cmd
}

// Binary returns the MinIO binary's path, or "" when there is none.
func Binary() string {
	if p := os.Getenv("PGWARD_MINIO_BIN"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, p := range []string{filepath.Join(home, ".cache/pgward/bin/minio")} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p
	}
	return ""
}

// Require skips (or, with PGWARD_TEST_REQUIRE=1, fails) the test when
// what is missing is missing.
func Require(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("PGWARD_TEST_REQUIRE") == "1" {
		t.Fatalf("%s is required (PGWARD_TEST_REQUIRE=1) but not available", what)
	}
	t.Skipf("%s not available; run `make test` to install it", what)
}

// Start runs MinIO on a free loopback port until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary()
	if bin == "" {
		Require(t, "MinIO")
	}
	s := &Server{AccessKey: "pgwardtest", SecretKey: randomHex(16), dataDir: t.TempDir()}
	port := FreePort(t)
	s.Endpoint = fmt.Sprintf("127.0.0.1:%d", port)
	s.start(t, bin)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

func (s *Server) start(t testing.TB, bin string) {
	t.Helper()
	s.cmd = exec.Command(bin, "server", "--quiet", "--address", s.Endpoint, "--console-address", "127.0.0.1:0", s.dataDir)
	s.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+s.AccessKey, "MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	logf, err := os.Create(filepath.Join(filepath.Dir(s.dataDir), "minio.log"))
	if err == nil {
		s.cmd.Stdout, s.cmd.Stderr = logf, logf
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start MinIO: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + s.Endpoint + "/minio/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("MinIO on %s not ready after 60s: %v", s.Endpoint, err)
		}
		time.Sleep(50 * time.Millisecond) // polling readiness, not synchronising
	}
}

// Stop stops the server; Restart brings it back with the same data.
func (s *Server) Stop(t testing.TB) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

// Restart starts a stopped server again on the same address and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.start(t, Binary())
}

// Bucket creates a bucket with a random name and returns it.
func (s *Server) Bucket(t testing.TB) string {
	t.Helper()
	c, err := minio.New(s.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Secure: false})
	if err != nil {
		t.Fatal(err)
	}
	name := "pgward-" + randomHex(6)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, name, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return name
}

// Env returns the environment pgward needs to reach the server.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"PGWARD_S3_ENDPOINT=" + s.Endpoint, "PGWARD_S3_INSECURE=true", "PGWARD_S3_PATH_STYLE=true",
	}
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
