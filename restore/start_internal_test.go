package restore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWaitRecoveryQuotesTheLog(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "pgward-start.log")
	var log strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintf(&log, "2026-11-20 14:03:%02d.000 UTC [42] LOG:  line %d\n", i, i)
	}
	log.WriteString("2026-11-20 14:04:00.000 UTC [42] FATAL:  could not create lock file \"/run/postgresql/.s.PGSQL.5432.lock\": Permission denied\n")
	log.WriteString("2026-11-20 14:04:00.001 UTC [42] LOG:  database system is shut down\n")
	os.WriteFile(logPath, []byte(log.String()), 0o600)
	_, err := waitRecovery(t.Context(), logPath, time.Now(), time.Minute)
	if err == nil {
		t.Fatal("a failed start was reported as recovered")
	}
	msg := err.Error()
	for _, want := range []string{
		`recovery failed: FATAL:  could not create lock file "/run/postgresql/.s.PGSQL.5432.lock": Permission denied`,
		"last lines of the server log " + logPath + ":\n  2026-11-20 14:03:13.000 UTC [42] LOG:  line 13\n",
		"line 30\n  2026-11-20 14:04:00.000 UTC [42] FATAL",
		"[42] LOG:  database system is shut down",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "line 12\n") {
		t.Errorf("the error quotes more than %d lines:\n%s", tailLines, msg)
	}

	// Timeouts quote the log too.
	os.WriteFile(logPath, []byte("LOG:  restored log file \"000000010000000000000003\" from archive\n"), 0o600)
	_, err = waitRecovery(t.Context(), logPath, time.Now(), 0)
	if err == nil || !strings.Contains(err.Error(), "recovery did not finish within 0s\nlast lines of the server log "+logPath+":\n  LOG:  restored log file") {
		t.Errorf("a timeout = %v", err)
	}
}

func TestLogTailIsBounded(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, "long.log")
	os.WriteFile(long, []byte(strings.Repeat(strings.Repeat("x", 999)+"\n", 40)), 0o600)
	if got := logTail(long); len(got) > tailBytes+200 || strings.Count(got, "\n  ") < 3 {
		t.Errorf("logTail of long lines: %d bytes, %d lines", len(got), strings.Count(got, "\n"))
	}
	empty := filepath.Join(dir, "empty.log")
	os.WriteFile(empty, nil, 0o600)
	if got := logTail(empty); got != " (the server log "+empty+" is empty)" {
		t.Errorf("logTail of an empty log = %q", got)
	}
	if got := logTail(filepath.Join(dir, "missing.log")); !strings.Contains(got, "no server log at") {
		t.Errorf("logTail of a missing log = %q", got)
	}
}
