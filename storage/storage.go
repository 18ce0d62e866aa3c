// Package storage defines the small streaming interface every repository
// backend implements, and the errors callers branch on. Backends live in
// sub-packages (fs, s3, memory); they store opaque bytes and know nothing
// about PostgreSQL or sealing.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is returned (wrapped) by Get and Stat when no object has the key.
var ErrNotExist = errors.New("object does not exist")

// ErrExist is returned (wrapped) by Create when an object already has the key.
var ErrExist = errors.New("object already exists")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	// Key is the object's full key inside the backend, slash-separated.
	Key string
	// Size is the stored size in bytes.
	Size int64
	// ModTime is when the object was stored.
	ModTime time.Time
	// Metadata holds the small string attributes given to Put. Keys are
	// lowercase ASCII letters, digits and '-'.
	Metadata map[string]string
}

// Backend stores whole objects under slash-separated keys.
//
// Every method is safe for concurrent use. Keys never begin with '/' and
// never contain "." or ".." segments; callers build them from package
// catalog.
type Backend interface {
	// Put stores everything read from r under key, replacing any object
	// already there. The object becomes visible only once complete: a
	// failure or crash at any point leaves either the previous object or
	// none, never a partial one. size is the exact length of r when known,
	// or -1. meta is stored with the object and returned by Stat and Get.
	Put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error

	// Create is Put that never replaces an object: when one exists under
	// key, it stores nothing and returns an error wrapping ErrExist, even
	// when two writers race. (S3: a conditional PUT for objects below one
	// part; for larger ones the check before the upload can race.)
	Create(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error

	// Get opens the object under key for reading. The caller closes the
	// reader. It returns an error wrapping ErrNotExist when there is none.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)

	// Stat describes the object under key, or returns an error wrapping
	// ErrNotExist.
	Stat(ctx context.Context, key string) (ObjectInfo, error)

	// List calls fn for every object whose key begins with prefix, in
	// lexical key order. An error from fn stops the listing and is returned.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error

	// Delete removes the object under key. Deleting a missing object is not
	// an error.
	Delete(ctx context.Context, key string) error
}

// ValidKey reports whether key is acceptable to every backend: non-empty,
// relative, slash-separated, without empty, "." or ".." segments.
func ValidKey(key string) bool {
	if key == "" || key[0] == '/' || key[len(key)-1] == '/' {
		return false
	}
	start := 0
	for i := 0; i <= len(key); i++ {
		if i == len(key) || key[i] == '/' {
			seg := key[start:i]
			if seg == "" || seg == "." || seg == ".." {
				return false
			}
			start = i + 1
		} else if key[i] == 0 || key[i] == '\\' {
			return false
		}
	}
	return true
}
