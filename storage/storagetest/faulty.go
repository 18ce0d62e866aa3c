package storagetest

import (
	"context"
	"io"

	"github.com/pgward/pgward/storage"
)

// Faulty wraps a Backend and fails the calls its hooks choose. A nil hook,
// or one that returns nil, passes the call through.
type Faulty struct {
	storage.Backend
	PutErr  func(key string) error
	GetErr  func(key string) error
	StatErr func(key string) error
}

var _ storage.Backend = (*Faulty)(nil)

// Put implements storage.Backend.
func (f *Faulty) Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if f.PutErr != nil {
		if err := f.PutErr(key); err != nil {
			return err
		}
	}
	return f.Backend.Put(ctx, key, r, size, meta)
}

// Create implements storage.Backend; PutErr applies to it too.
func (f *Faulty) Create(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error {
	if f.PutErr != nil {
		if err := f.PutErr(key); err != nil {
			return err
		}
	}
	return f.Backend.Create(ctx, key, r, size, meta)
}

// Get implements storage.Backend.
func (f *Faulty) Get(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	if f.GetErr != nil {
		if err := f.GetErr(key); err != nil {
			return nil, storage.ObjectInfo{}, err
		}
	}
	return f.Backend.Get(ctx, key)
}

// Stat implements storage.Backend.
func (f *Faulty) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if f.StatErr != nil {
		if err := f.StatErr(key); err != nil {
			return storage.ObjectInfo{}, err
		}
	}
	return f.Backend.Stat(ctx, key)
}
