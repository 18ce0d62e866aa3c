package restore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Recovery is what the restored server needs to recover to the target.
type Recovery struct {
	// RestoreCommand is the full restore_command.
	RestoreCommand string
	Target         Target
	// Action is promote, pause or shutdown.
	Action string
	// KeepArchiving leaves archive_mode as the backup had it; by default
	// the restored copy does not archive.
	KeepArchiving bool
}

// Validate refuses, before anything is written, settings that
// postgresql.auto.conf cannot hold as given.
func (r Recovery) Validate() error {
	if err := r.Target.Validate(); err != nil {
		return err
	}
	if r.RestoreCommand == "" {
		return errors.New("restore_command is empty")
	}
	if err := CheckConfValue(r.RestoreCommand); err != nil {
		return fmt.Errorf("restore_command %s: %w (a path in it?)", strconv.Quote(r.RestoreCommand), err)
	}
	switch r.Action {
	case "promote", "pause", "shutdown":
	default:
		return fmt.Errorf("recovery_target_action %s: want promote, pause or shutdown", strconv.Quote(r.Action))
	}
	return nil
}

// WriteRecovery appends the recovery settings to postgresql.auto.conf and
// creates recovery.signal: the last step, so a directory with
// recovery.signal is always complete.
func WriteRecovery(pgdata string, r Recovery) error {
	if err := r.Validate(); err != nil {
		return fmt.Errorf("recovery settings: %w", err)
	}
	lines := []string{
		"",
		"# Added by pgward restore: recovery to " + r.Target.String(),
		"restore_command = " + quote(r.RestoreCommand),
		"recovery_target_timeline = 'latest'",
	}
	if !r.KeepArchiving {
		// A restored copy must not archive into the repository it came
		// from: its new timeline would become the one restores follow.
		lines = append(lines, "archive_mode = 'off'")
	}
	// The backup's own postgresql.auto.conf may carry recovery targets (an
	// earlier restore's, copied to the replica): only a setting's last
	// line counts, so clear every target but the chosen one, before it.
	chosen := map[Kind]string{Time: "recovery_target_time", LSN: "recovery_target_lsn", XID: "recovery_target_xid", Name: "recovery_target_name"}[r.Target.Kind]
	for _, name := range []string{"recovery_target", "recovery_target_time", "recovery_target_lsn", "recovery_target_xid", "recovery_target_name"} {
		if name != chosen {
			lines = append(lines, name+" = ''")
		}
	}
	switch r.Target.Kind {
	case Time:
		lines = append(lines, "recovery_target_time = "+quote(r.Target.Time.UTC().Format("2006-01-02 15:04:05.999999-07")))
	case LSN:
		lines = append(lines, "recovery_target_lsn = "+quote(r.Target.LSN.String()))
	case XID:
		lines = append(lines, "recovery_target_xid = "+quote(strconv.FormatUint(r.Target.XID, 10)))
	case Name:
		lines = append(lines, "recovery_target_name = "+quote(r.Target.Name))
	}
	if r.Target.Kind != Latest {
		lines = append(lines, "recovery_target_action = "+quote(r.Action))
	}
	f, err := os.OpenFile(filepath.Join(pgdata, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("recovery settings: %w", err)
	}
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("recovery settings: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(pgdata, "recovery.signal"), nil, 0o600)
}

// quote makes a string literal that PostgreSQL's configuration lexer
// (guc-file.l) reads back as s: inside quotes a backslash starts an
// escape (\b \f \n \r \t, octal, or the next character itself) and a
// doubled quote is a quote, so each backslash and each quote is written
// twice. s holds no control characters (CheckConfValue): the lexer
// allows no newline in a string.
func quote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`).Replace(s) + "'"
}

// ShellArg quotes s as one word of a restore_command: PostgreSQL first
// replaces %f, %p, %r and %% in the command, then runs it with sh -c. So
// each % is doubled, and a word with anything but [A-Za-z0-9@%+:,./_-]
// is single-quoted for the shell (a single quote written as '"'"').
func ShellArg(s string) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}
