package filebackup

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("id cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriter(tmp)
	w.WriteString(cacheHeader)
	keys := make([]string, 0, len(ids))
	for id, ok := range ids {
		if ok {
			keys = append(keys, id)
		}
	}
	slices.Sort(keys)
	for _, id := range keys {
		w.WriteString(id)
		w.WriteByte('\n')
	}
	err = w.Flush()
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("id cache: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
