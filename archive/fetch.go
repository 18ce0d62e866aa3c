package archive

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/zeebo/xxh3"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
	"github.com/pgward/pgward/wal"
)

// Fetch writes WAL file name from the repository to dest. The file appears
// at dest complete and verified, or not at all: it is written to a
// temporary file in dest's directory, checked against the checksum stored
// with the object, and renamed into place. It returns an error wrapping
// ErrNotFound when the repository does not hold the file.
func (a *Archive) Fetch(ctx context.Context, name, dest string) error {
	if _, err := wal.ParseFileName(name); err != nil {
		return err
	}
	rc, info, err := a.open(ctx, name)
	if err != nil {
		return err
	}
	defer rc.Close()

	plain, err := a.Opener.NewReader(rc)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer plain.Close()

	tmp, err := os.CreateTemp(filepath.Dir(dest), tempPrefix+name+"-*")
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	var h *xxh3.Hasher128
	var w io.Writer = tmp
	if info.Metadata[MetaChecksum] != "" {
		h = xxh3.New128()
		w = io.MultiWriter(tmp, h)
	}
	n, err := io.Copy(w, plain)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if want := info.Metadata[MetaSize]; want != "" && want != strconv.FormatInt(n, 10) {
		return fmt.Errorf("fetch %s: %w: unsealed %d bytes, the object records %s", name, seal.ErrCorrupt, n, want)
	}
	if h != nil {
		sum := h.Sum128().Bytes()
		if got := hex.EncodeToString(sum[:]); got != info.Metadata[MetaChecksum] {
			return fmt.Errorf("fetch %s: %w: the unsealed file's checksum is %s, the object records %s", name, seal.ErrCorrupt, short(got), short(info.Metadata[MetaChecksum]))
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return fmt.Errorf("fetch %s: %w", name, err)
	}
	tmp = nil
	return nil
}

// RemoveStaleTemps deletes temporary files that a killed Fetch left in
// dir (PostgreSQL's pg_wal) more than olderThan ago.
func RemoveStaleTemps(dir string, olderThan time.Duration) {
	matches, _ := filepath.Glob(filepath.Join(dir, tempPrefix+"*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil && time.Since(fi.ModTime()) > olderThan {
			os.Remove(m)
		}
	}
}

// open finds the object for name under either suffix, trying first the
// one this host can decrypt.
func (a *Archive) open(ctx context.Context, name string) (io.ReadCloser, storage.ObjectInfo, error) {
	suffixes := []string{seal.SuffixEncrypted, seal.SuffixPlain}
	if !a.Opener.CanDecrypt() {
		suffixes[0], suffixes[1] = suffixes[1], suffixes[0]
	}
	for _, s := range suffixes {
		rc, info, err := a.Store.Get(ctx, a.Layout.WALKey(name, s))
		if err == nil {
			return rc, info, nil
		}
		if !errors.Is(err, storage.ErrNotExist) {
			return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, err)
		}
	}
	// "Not found" ends recovery, so it must mean the end of this cluster's
	// archive, not a wrong bucket, prefix or --cluster: those have no
	// cluster.json.
	if _, err := a.readClusterInfo(ctx); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, ErrNoCluster)
		}
		return nil, storage.ObjectInfo{}, fmt.Errorf("fetch %s: %w", name, err)
	}
	return nil, storage.ObjectInfo{}, fmt.Errorf("%s: %w", name, ErrNotFound)
}
