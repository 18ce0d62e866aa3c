package filebackup

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Name is a path or link target of any bytes, as Linux allows: a snapshot
// must give back a name with a newline or invalid UTF-8 exactly. JSON
// holds it as a string when it is valid UTF-8 (escapes keep newlines and
// control characters), else as {"b64": "…"}.
type Name string

// MarshalJSON writes the name as a string, or base64 when it is not UTF-8.
func (n Name) MarshalJSON() ([]byte, error) {
	if utf8.ValidString(string(n)) {
		return json.Marshal(string(n))
	}
	return json.Marshal(struct {
		B64 string `json:"b64"`
	}{base64.StdEncoding.EncodeToString([]byte(n))})
}

// UnmarshalJSON reads either form.
func (n *Name) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*n = Name(s)
		return nil
	}
	var o struct {
		B64 *string `json:"b64"`
	}
	if err := json.Unmarshal(b, &o); err != nil || o.B64 == nil {
		return errors.New("a name is a string or {\"b64\": …}")
	}
	raw, err := base64.StdEncoding.DecodeString(*o.B64)
	if err != nil {
		return fmt.Errorf("a name's base64: %w", err)
	}
	*n = Name(raw)
	return nil
}

// The types of entries.
const (
	TypeFile    = "file"
	TypeDir     = "dir"
	TypeSymlink = "symlink"
	TypeFIFO    = "fifo"
	TypeChar    = "char"
	TypeBlock   = "block"
	TypeSocket  = "socket"
)

// Node is one entry of a snapshot's tree: a line of its JSON stream.
type Node struct {
	// Path is relative to the set's root, '/'-separated; "" is the root.
	Path  Name   `json:"path"`
	Type  string `json:"type"`
	Mode  uint32 `json:"mode"` // permission, setuid, setgid and sticky bits
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// Times in nanoseconds since the epoch.
	MTime int64  `json:"mtime_ns"`
	CTime int64  `json:"ctime_ns"`
	Inode uint64 `json:"inode"`
	Dev   uint64 `json:"dev"`
	Nlink uint64 `json:"nlink"`
	Size  int64  `json:"size"`
	Rdev  uint64 `json:"rdev,omitempty"` // char and block devices
	// Target is a symlink's target; HardLink the earlier path of the
	// same inode in this snapshot (its content is that entry's).
	Target   *Name `json:"target,omitempty"`
	HardLink *Name `json:"hardlink,omitempty"`
	// Xattrs are the extended attributes that could be read.
	Xattrs map[string][]byte `json:"xattrs,omitempty"`
	// Data are a sparse file's extents holding data ([offset, length]);
	// nil for a file without holes. Chunks cover the extents' bytes, in
	// order.
	Data   [][2]int64 `json:"data,omitempty"`
	Chunks []string   `json:"chunks,omitempty"`
	// Changed says the file changed while it was read: what is stored may
	// mix before and after.
	Changed bool `json:"changed,omitempty"`
	// Item is set on what is not a file of the tree: a user's crontab
	// (ItemCrontab, Path the user's name) or a command's output
	// (ItemCommand, Path its name).
	Item string `json:"item,omitempty"`
}

// The kinds of items.
const (
	ItemCrontab = "crontab"
	ItemCommand = "command"
)

// Validate refuses a node read back that a restore must not follow: a
// path that leaves the target (absolute, "..", empty segments), an
// unknown type, a hard link to itself.
func (n Node) Validate() error {
	if err := checkRelative(string(n.Path), true); err != nil {
		return fmt.Errorf("node %q: %w", shortName(n.Path), err)
	}
	switch n.Type {
	case TypeFile, TypeDir, TypeSymlink, TypeFIFO, TypeChar, TypeBlock, TypeSocket:
	default:
		return fmt.Errorf("node %q: unknown type %q", shortName(n.Path), n.Type)
	}
	if n.Type == TypeSymlink && n.Target == nil {
		return fmt.Errorf("node %q: a symlink without a target", shortName(n.Path))
	}
	if n.HardLink != nil {
		if n.Type != TypeFile {
			return fmt.Errorf("node %q: only files are hard links", shortName(n.Path))
		}
		if err := checkRelative(string(*n.HardLink), false); err != nil || *n.HardLink == n.Path {
			return fmt.Errorf("node %q: hard link to %q: not an earlier path of the snapshot", shortName(n.Path), shortName(*n.HardLink))
		}
	}
	if n.Item != "" {
		if n.Item != ItemCrontab && n.Item != ItemCommand {
			return fmt.Errorf("item %q: unknown kind %q", shortName(n.Path), n.Item)
		}
		if n.Type != TypeFile || n.HardLink != nil || n.Path == "" || strings.Contains(string(n.Path), "/") || ValidateItemName(string(n.Path)) != nil {
			return fmt.Errorf("item %q: not a plain file with a one-segment name", shortName(n.Path))
		}
	}
	if n.Mode&^0o7777 != 0 || n.Size < 0 {
		return fmt.Errorf("node %q: mode %o or size %d out of range", shortName(n.Path), n.Mode, n.Size)
	}
	var end int64
	for _, e := range n.Data {
		if e[0] < end || e[1] <= 0 || e[0]+e[1] > n.Size || e[0]+e[1] < e[0] {
			return fmt.Errorf("node %q: data extents out of order or past its size", shortName(n.Path))
		}
		end = e[0] + e[1]
	}
	return nil
}

// ValidateItemName checks a --from-command name or a crontab's user: it
// names a file when restored.
func ValidateItemName(name string) error {
	if err := checkRelative(name, false); err != nil || strings.Contains(name, "/") || len(name) > 200 {
		return fmt.Errorf("item name %q: want one path segment (no '/', not '.' or '..'), at most 200 bytes", shortName(Name(name)))
	}
	return nil
}

// checkRelative accepts a '/'-separated relative path without empty, "."
// or ".." segments or NUL bytes; the root ("") only when root is true.
func checkRelative(p string, root bool) error {
	if p == "" {
		if root {
			return nil
		}
		return errors.New("an empty path")
	}
	if strings.HasPrefix(p, "/") || strings.ContainsRune(p, 0) {
		return errors.New("not a relative path")
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return errors.New("a path with an empty, . or .. segment")
		}
	}
	return nil
}

func shortName(n Name) string {
	s := string(n)
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
