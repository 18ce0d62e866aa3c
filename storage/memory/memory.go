// Package memory is an in-memory storage.Backend for tests and dry runs.
package memory

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgward/pgward/storage"
)

type object struct {
	data []byte
	info storage.ObjectInfo
}

// Backend keeps objects in a map. The zero value is not usable; call New.
type Backend struct {
	mu      sync.Mutex
	objects map[string]object
	now     func() time.Time
}

var _ storage.Backend = (*Backend)(nil)

// New returns an empty Backend.
func New() *Backend {
	return &Backend{objects: make(map[string]object), now: time.Now}
}

// Put implements storage.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return b.write(key, r, size, meta, true)
}

// Create implements storage.Backend.
func (b *Backend) Create(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	return b.write(key, r, size, meta, false)
}

func (b *Backend) write(key string, r io.Reader, size int64, meta map[string]string, replace bool) error {
	if err := checkKey(key); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("put %s: read %d bytes, expected %d", key, len(data), size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.objects[key]; ok && !replace {
		return fmt.Errorf("create %s: %w", key, storage.ErrExist)
	}
	b.objects[key] = object{data: data, info: storage.ObjectInfo{
		Key: key, Size: int64(len(data)), ModTime: b.now(), Metadata: maps.Clone(meta),
	}}
	return nil
}

// Get implements storage.Backend.
func (b *Backend) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return nil, storage.ObjectInfo{}, fmt.Errorf("%s: %w", key, storage.ErrNotExist)
	}
	return io.NopCloser(bytes.NewReader(o.data)), o.copyInfo(), nil
}

// Stat implements storage.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.objects[key]
	if !ok {
		return storage.ObjectInfo{}, fmt.Errorf("%s: %w", key, storage.ErrNotExist)
	}
	return o.copyInfo(), nil
}

// List implements storage.Backend.
func (b *Backend) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	b.mu.Lock()
	var infos []storage.ObjectInfo
	for k, o := range b.objects {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, o.copyInfo())
		}
	}
	b.mu.Unlock()
	sort.Slice(infos, func(i, j int) bool { return infos[i].Key < infos[j].Key })
	for _, info := range infos {
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements storage.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.objects, key)
	return nil
}

// copyInfo returns the object's info with its own metadata map: a caller
// that changes it must not change the stored object, as with fs and s3.
func (o object) copyInfo() storage.ObjectInfo {
	info := o.info
	info.Metadata = maps.Clone(o.info.Metadata)
	return info
}

func checkKey(key string) error {
	if !storage.ValidKey(key) {
		return fmt.Errorf("invalid object key %q", key)
	}
	return nil
}
