package filebackup

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/pgward/pgward/internal/atomicfile"
)

// The id cache is the backing-up host's own record of the chunk ids a
// domain holds (it cannot read the repository's indexes: they are sealed
// to the customer). It only saves storage: a chunk it wrongly names as
// stored would be missing, so a restore checks every chunk against the
// indexes and packs, and files check finds what an old cache lost; a
// cache lost or refused is rebuilt empty, which costs storage, never data.
const cacheHeader = "PGWARD-FILES-IDS-1\n"

// LoadIDCache reads the ids at path; a missing file is an empty cache.
func LoadIDCache(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("id cache: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() || sc.Text()+"\n" != cacheHeader {
		return nil, fmt.Errorf("id cache %s: not a pgward id cache", path)
	}
	out := map[string]bool{}
	for sc.Scan() {
		line := sc.Text()
		if _, err := hex.DecodeString(line); err != nil || len(line) != 64 {
			return nil, fmt.Errorf("id cache %s: line %d is not a chunk id", path, len(out)+2)
		}
		out[line] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("id cache %s: %w", path, err)
	}
	return out, nil
}

// SaveIDCache writes ids to path atomically (temp file, fsync, rename,
// fsync of the directory), mode 0600.
func SaveIDCache(path string, ids map[string]bool) error {
	keys := make([]string, 0, len(ids))
	for id, ok := range ids {
		if ok {
			keys = append(keys, id)
		}
	}
	slices.Sort(keys)
	var b strings.Builder
	b.Grow(len(cacheHeader) + 65*len(keys))
	b.WriteString(cacheHeader)
	for _, id := range keys {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	if err := atomicfile.Write(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("id cache: %w", err)
	}
	return nil
}
