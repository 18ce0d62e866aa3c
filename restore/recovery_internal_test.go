package restore

import (
	"os"
	"os/exec"
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

// gucString reads a quoted string as PostgreSQL's configuration lexer
// does (guc-file.l: STRING is \'([^'\\\n]|\\.|\'\')*\', then GUC_scanstr):
// it returns the value and what follows the literal.
func gucString(t *testing.T, lit string) (value, rest string) {
	t.Helper()
	if !strings.HasPrefix(lit, "'") {
		t.Fatalf("%q does not start a string", lit)
	}
	var b strings.Builder
	for i := 1; i < len(lit); i++ {
		switch c := lit[i]; {
		case c == '\n':
			t.Fatalf("%q: a newline inside a string is a syntax error", lit)
		case c == '\'' && i+1 < len(lit) && lit[i+1] == '\'':
			b.WriteByte('\'')
			i++
		case c == '\'':
			return b.String(), lit[i+1:]
		case c == '\\' && i+1 < len(lit):
			i++
			switch e := lit[i]; e {
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v, k := 0, 0
				for ; k < 3 && i+k < len(lit) && lit[i+k] >= '0' && lit[i+k] <= '7'; k++ {
					v = v<<3 + int(lit[i+k]-'0')
				}
				i += k - 1
				b.WriteByte(byte(v))
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	t.Fatalf("%q: unterminated string", lit)
	return "", ""
}

func TestQuoteReadsBackAsWritten(t *testing.T) {
	for _, s := range []string{
		"", "after400", "it's", `back\slash`, `ends in a backslash\`, `\'`, `x\\\'`, `\101\n\t`, "''", `'\''`,
		`x\' recovery_end_command = 'pwned' #`, "/srv/it's a dir/pgward-restore.yaml",
	} {
		lit := quote(s)
		got, rest := gucString(t, lit)
		if got != s || rest != "" {
			t.Errorf("quote(%q) = %s, read back as %q with %q after it", s, lit, got, rest)
		}
	}
}

func TestWriteRecoveryRefusesControlCharacters(t *testing.T) {
	for _, r := range []Recovery{
		{RestoreCommand: "pgward wal-fetch %f %p", Target: Target{Kind: Name, Name: "x\\'\nrecovery_end_command = pwned\n#"}, Action: "promote"},
		{RestoreCommand: "pgward --config '/srv/a\nb' wal-fetch %f %p", Target: Target{Kind: Latest}, Action: "promote"},
		{RestoreCommand: "pgward wal-fetch %f %p", Target: Target{Kind: Name, Name: "a\rb"}, Action: "promote"},
		{RestoreCommand: "pgward wal-fetch %f %p", Target: Target{Kind: Latest}, Action: "promote'\nx = y"},
	} {
		dir := t.TempDir()
		conf := filepath.Join(dir, "postgresql.auto.conf")
		os.WriteFile(conf, []byte("# from the backup\n"), 0o600)
		err := WriteRecovery(dir, r)
		if err == nil {
			t.Errorf("WriteRecovery(%+v) was accepted", r)
		}
		if b, _ := os.ReadFile(conf); string(b) != "# from the backup\n" {
			t.Errorf("a refused WriteRecovery wrote %q", b)
		}
		if _, err := os.Stat(filepath.Join(dir, "recovery.signal")); !os.IsNotExist(err) {
			t.Errorf("a refused WriteRecovery created recovery.signal")
		}
	}
}

// A name with a quote and a backslash is written so that PostgreSQL reads
// back exactly that name.
func TestWriteRecoveryName(t *testing.T) {
	dir := t.TempDir()
	name := `it's a \ point\`
	if err := WriteRecovery(dir, Recovery{RestoreCommand: ShellArg("/srv/my dir/pgward") + " wal-fetch %f %p", Target: Target{Kind: Name, Name: name}, Action: "pause"}); err != nil {
		t.Fatal(err)
	}
	got := lastValues(t, filepath.Join(dir, "postgresql.auto.conf"))
	if v, rest := gucString(t, got["recovery_target_name"]); v != name || rest != "" {
		t.Errorf("recovery_target_name = %s, read back as %q", got["recovery_target_name"], v)
	}
	if v, _ := gucString(t, got["restore_command"]); v != `'/srv/my dir/pgward' wal-fetch %f %p` {
		t.Errorf("restore_command reads back as %q", v)
	}
}

// substitute does what PostgreSQL does to restore_command before it runs
// it with sh -c (BuildRestoreCommand): %f, %p and %r are replaced, %%
// becomes %.
func substitute(cmd, f, p string) string {
	var b strings.Builder
	for i := 0; i < len(cmd); i++ {
		if cmd[i] != '%' || i+1 == len(cmd) {
			b.WriteByte(cmd[i])
			continue
		}
		switch cmd[i+1] {
		case 'f':
			b.WriteString(f)
		case 'p':
			b.WriteString(p)
		case 'r':
			b.WriteString("000000010000000000000001")
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			continue
		}
		i++
	}
	return b.String()
}

func TestShellArgSurvivesPostgreSQLAndTheShell(t *testing.T) {
	for _, s := range []string{
		"/usr/local/bin/pgward", "/srv/my dir/pgward-restore.yaml", "/srv/it's/x", "/srv/100%p/%f%%", `a"b$c` + "`d`" + `\e;f|g&h*i?j~k`,
		"'", "''", "-x", "", "/srv/\u00e9t\u00e9", "a=b",
	} {
		// The whole path a restore_command takes: the auto.conf literal,
		// PostgreSQL's placeholders, sh -c.
		cmd := "printf '%%s|' " + ShellArg(s) + " %f %p"
		value, _ := gucString(t, quote(cmd))
		out, err := exec.Command("sh", "-c", substitute(value, "000000010000000000000003", "pg_wal/RECOVERYXLOG")).Output()
		if err != nil {
			t.Fatalf("ShellArg(%q) = %s: sh: %v", s, ShellArg(s), err)
		}
		if want := s + "|000000010000000000000003|pg_wal/RECOVERYXLOG|"; string(out) != want {
			t.Errorf("ShellArg(%q) = %s: the command saw %q, want %q", s, ShellArg(s), out, want)
		}
	}
	if got := ShellArg("/usr/bin/pgward"); got != "/usr/bin/pgward" {
		t.Errorf("a plain path is quoted: %s", got)
	}
}
