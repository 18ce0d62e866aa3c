package restore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgward/pgward/wal"
)

// lastValues reads a postgresql.conf-style file as PostgreSQL does: the
// last line of each setting wins.
func lastValues(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		name, value, ok := strings.Cut(line, " = ")
		if ok && !strings.HasPrefix(name, "#") {
			out[name] = value
		}
	}
	return out
}

func TestWriteRecoveryClearsInheritedTargets(t *testing.T) {
	inherited := "# from an earlier restore, copied by pg_basebackup\nrecovery_target_time = '2026-01-01 00:00:00+00'\nrecovery_target = 'immediate'\n"
	for _, target := range []Target{{Kind: LSN, LSN: wal.LSN(0x3000060)}, {Kind: Latest}} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "postgresql.auto.conf"), []byte(inherited), 0o600)
		if err := WriteRecovery(dir, Recovery{RestoreCommand: "pgward wal-fetch %f %p", Target: target, Action: "promote"}); err != nil {
			t.Fatal(err)
		}
		got := lastValues(t, filepath.Join(dir, "postgresql.auto.conf"))
		want := map[string]string{"recovery_target": "''", "recovery_target_time": "''", "recovery_target_xid": "''", "recovery_target_name": "''", "recovery_target_lsn": "''"}
		if target.Kind == LSN {
			want["recovery_target_lsn"] = "'0/3000060'"
		}
		for name, v := range want {
			if got[name] != v {
				t.Errorf("%s: %s = %s, want %s", target, name, got[name], v)
			}
		}
		if got["archive_mode"] != "'off'" {
			t.Errorf("%s: archive_mode = %s", target, got["archive_mode"])
		}
		if _, err := os.Stat(filepath.Join(dir, "recovery.signal")); err != nil {
			t.Errorf("%s: no recovery.signal: %v", target, err)
		}
	}
}
