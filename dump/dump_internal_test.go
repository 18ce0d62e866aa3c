package dump

import (
	"strings"
	"testing"
)

func TestIsRecoveryConflict(t *testing.T) {
	for msg, want := range map[string]bool{
		"pg_dump: error: Dumping the contents of table \"t\" failed: PQgetResult() failed.\nERROR:  canceling statement due to conflict with recovery\nDETAIL:  User query might have needed to see row versions that must be removed.": true,
		"FATAL:  terminating connection due to conflict with recovery":             true,
		"pg_dump: error: query failed: ERROR:  permission denied for table secret": false,
		"": false,
	} {
		if got := isRecoveryConflict(msg); got != want {
			t.Errorf("isRecoveryConflict(%q) = %v", msg, got)
		}
	}
}

func TestCheckClientVersion(t *testing.T) {
	if err := CheckClientVersion("/usr/bin/pg_dump", "16.2", 16, "15.18", 15); err != nil {
		t.Errorf("a newer pg_dump is refused: %v", err)
	}
	err := CheckClientVersion("/usr/lib/postgresql/13/bin/pg_dump", "13.4", 13, "15.18", 15)
	want := "pg_dump 13.4 (/usr/lib/postgresql/13/bin/pg_dump) is older than the server (PostgreSQL 15.18) and cannot dump it: install postgresql-client-15"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckClientVersion(13 vs 15) = %v", err)
	}
}

func TestTailBufferKeepsTheLastWords(t *testing.T) {
	tb := &tailBuffer{max: 10}
	tb.Write([]byte("0123456789"))
	tb.Write([]byte("abc\n"))
	if got := tb.String(); got != "456789abc" {
		t.Errorf("tail = %q", got)
	}
}
