package filebackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIDCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "shop.ids")
	if ids, err := LoadIDCache(path); err != nil || len(ids) != 0 {
		t.Fatalf("a missing cache: %v, %v", ids, err)
	}
	s := Secret{3}
	ids := map[string]bool{s.ChunkID([]byte("a")): true, s.ChunkID([]byte("b")): true}
	if err := SaveIDCache(path, ids); err != nil {
		t.Fatal(err)
	}
	back, err := LoadIDCache(path)
	if err != nil || len(back) != 2 || !back[s.ChunkID([]byte("a"))] {
		t.Fatalf("round trip: %v, %v", back, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
	for name, content := range map[string]string{
		"no header":  strings.Repeat("a", 64) + "\n",
		"a bad line": cacheHeader + "not-an-id\n",
		"a short id": cacheHeader + "abcd\n",
	} {
		os.WriteFile(path, []byte(content), 0o600)
		if _, err := LoadIDCache(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
