package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// documentedFields reads docs/json.md: for each section headed with a
// command, the fields of its table and which are optional.
func documentedFields(t *testing.T) map[string]map[string]bool {
	t.Helper()
	data, err := os.ReadFile("../../docs/json.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("^## `(.+)`$")
	row := regexp.MustCompile("^\\| `([a-z_]+)` \\|")
	out := map[string]map[string]bool{}
	section := ""
	for _, line := range strings.Split(string(data), "\n") {
		if m := heading.FindStringSubmatch(line); m != nil {
			section = m[1]
			out[section] = map[string]bool{}
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && section != "" {
			out[section][m[1]] = strings.Contains(line, "*(optional)*")
		}
	}
	return out
}

// backupInfoFields are backup.json's (docs/format.md).
var backupInfoFields = []string{"format", "id", "label", "system_identifier", "pg_version", "start_lsn", "stop_lsn",
	"start_timeline", "stop_timeline", "start_time", "stop_time", "data_bytes", "stored_bytes", "encrypted", "archives", "manifest"}

// Every listing's and plan's JSON is what docs/json.md says: every field
// printed is documented, every field documented as always there is printed.
func TestJSONSchemaIsDocumented(t *testing.T) {
	isolate(t)
	docs := documentedFields(t)
	dir, repoURL := fileRepo(t)
	src := fakeSegment(t, t.TempDir(), 3, sysID, 1)
	pgward(t, "--repo", repoURL, "--no-encryption", "wal-push", src).check(t, exitOK, nil, nil)
	putClusterBackup(t, dir, "main", "20261201T000000Z", time.Now().Add(-time.Hour))
	// A failed backup too, so the listing shows its fields.
	if err := os.MkdirAll(filepath.Join(dir, "main", "basebackups", "20261130T000000Z"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "main", "basebackups", "20261130T000000Z", "base.tar.0000.zst"), []byte("x"))
	pgdata := filepath.Join(t.TempDir(), "restored")

	for _, tc := range []struct {
		section string
		args    []string
		array   bool
	}{
		{"pgward check --json", []string{"check", "--json"}, false},
		{"pgward clusters --json", []string{"clusters", "--json"}, true},
		{"pgward backup list --json", []string{"backup", "list", "--json"}, true},
		{"pgward prune --json", []string{"prune", "--dry-run", "--json"}, false},
		{"pgward verify --json", []string{"verify", "--json"}, false},
		{"pgward retention show --json", []string{"retention", "show", "--json"}, false},
		{"pgward keys usage --json", []string{"keys", "usage", "--json"}, false},
		{"pgward restore --show-window --json", []string{"restore", "--show-window", "--json"}, true},
		{"pgward restore --dry-run --json", []string{"restore", "--latest", "--dry-run", "--json", "--pgdata", pgdata}, false},
		{"--cluster all --json", []string{"backup", "list", "--cluster", "all", "--json"}, true},
	} {
		t.Run(tc.section, func(t *testing.T) {
			fields, ok := docs[tc.section]
			if !ok || len(fields) == 0 {
				t.Fatalf("docs/json.md has no table for %s", tc.section)
			}
			r := pgward(t, append([]string{"--repo", repoURL}, tc.args...)...)
			var objects []map[string]json.RawMessage
			if tc.array {
				if err := json.Unmarshal([]byte(r.stdout), &objects); err != nil || len(objects) == 0 {
					t.Fatalf("not a non-empty JSON array (%v): %s", err, r.stdout)
				}
			} else {
				var one map[string]json.RawMessage
				if err := json.Unmarshal([]byte(r.stdout), &one); err != nil {
					t.Fatalf("not a JSON object (%v): %s", err, r.stdout)
				}
				objects = append(objects, one)
			}
			seen := map[string]bool{}
			for _, obj := range objects {
				for k := range obj {
					seen[k] = true
				}
			}
			// backup list prints backup.json's own fields too (docs/format.md;
			// a failed backup's are zero).
			if tc.section == "pgward backup list --json" {
				for _, k := range backupInfoFields {
					fields[k] = true
				}
			}
			for k := range seen {
				if _, ok := fields[k]; !ok {
					t.Errorf("prints %q, which docs/json.md does not list", k)
				}
			}
			for k, optional := range fields {
				if !optional && !seen[k] {
					t.Errorf("docs/json.md lists %q, which it does not print", k)
				}
			}
		})
	}
}
