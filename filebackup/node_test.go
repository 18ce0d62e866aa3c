package filebackup

import (
	"encoding/json"
	"strings"
	"testing"
)

// Names of any bytes come back exactly.
func TestNameRoundTrip(t *testing.T) {
	for _, n := range []Name{"", "plain.txt", "with space", "new\nline", "tab\tand \"quotes\" and \\", "caf\xc3\xa9", "bad\xff\xfeutf8", "\x01ctl", "日本語"} {
		b, err := json.Marshal(n)
		if err != nil {
			t.Fatal(err)
		}
		var back Name
		if err := json.Unmarshal(b, &back); err != nil || back != n {
			t.Errorf("%q → %s → %q, %v", n, b, back, err)
		}
		if strings.ContainsRune(string(b), '\n') {
			t.Errorf("%q encodes with a raw newline: %s", n, b)
		}
	}
	for _, bad := range []string{`{"b64": "!!"}`, `{}`, `42`, `{"x": "y"}`} {
		var n Name
		if err := json.Unmarshal([]byte(bad), &n); err == nil {
			t.Errorf("Unmarshal(%s) accepted it", bad)
		}
	}
}

func TestNodeValidate(t *testing.T) {
	name := func(s string) *Name { n := Name(s); return &n }
	ok := []Node{
		{Path: "", Type: TypeDir, Mode: 0o755},
		{Path: "etc/passwd", Type: TypeFile, Mode: 0o644, Size: 10, Data: [][2]int64{{0, 4}, {8, 2}}},
		{Path: "a/link", Type: TypeSymlink, Target: name("../anywhere")}, // a target may point anywhere: it is not followed
		{Path: "b", Type: TypeFile, HardLink: name("a/first")},
	}
	for _, n := range ok {
		if err := n.Validate(); err != nil {
			t.Errorf("%+v: %v", n, err)
		}
	}
	bad := map[string]Node{
		"absolute":           {Path: "/etc/passwd", Type: TypeFile},
		"dot dot":            {Path: "a/../../x", Type: TypeFile},
		"empty segment":      {Path: "a//b", Type: TypeFile},
		"NUL":                {Path: "a\x00b", Type: TypeFile},
		"unknown type":       {Path: "a", Type: "door"},
		"symlink no target":  {Path: "a", Type: TypeSymlink},
		"hard link to self":  {Path: "a", Type: TypeFile, HardLink: name("a")},
		"hard link escaping": {Path: "a", Type: TypeFile, HardLink: name("../x")},
		"dir hard link":      {Path: "a", Type: TypeDir, HardLink: name("b")},
		"mode bits":          {Path: "a", Type: TypeFile, Mode: 0o170644},
		"negative size":      {Path: "a", Type: TypeFile, Size: -1},
		"extent past size":   {Path: "a", Type: TypeFile, Size: 4, Data: [][2]int64{{2, 4}}},
		"extents overlap":    {Path: "a", Type: TypeFile, Size: 10, Data: [][2]int64{{0, 4}, {2, 2}}},
	}
	for what, n := range bad {
		if err := n.Validate(); err == nil {
			t.Errorf("%s: %+v was accepted", what, n)
		}
	}
}

func FuzzNodeJSON(f *testing.F) {
	f.Add([]byte(`{"path":"a/b","type":"file","mode":420,"size":3,"chunks":["x"]}`))
	f.Add([]byte(`{"path":{"b64":"/w=="},"type":"symlink","target":{"b64":"Li4="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var n Node
		if json.Unmarshal(b, &n) != nil || n.Validate() != nil {
			return
		}
		if strings.HasPrefix(string(n.Path), "/") || strings.Contains("/"+string(n.Path)+"/", "/../") {
			t.Fatalf("accepted a path that leaves the target: %q", n.Path)
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
