// Package storagetest is the conformance suite every storage.Backend must
// pass, and a fault-injecting wrapper for tests of the layers above.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/pgward/pgward/storage"
)

// Run exercises b. It writes only keys below a fresh prefix, so one
// long-lived bucket can serve many runs.
func Run(t *testing.T, b storage.Backend) {
	t.Helper()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	base := fmt.Sprintf("conformance-%x/", rnd)

	t.Run("PutGetRoundTrip", func(t *testing.T) {
		ctx := t.Context()
		for _, size := range []int{0, 1, 4096, 3<<20 + 17} {
			key := fmt.Sprintf("%sroundtrip/%d", base, size)
			data := randomBytes(size)
			if err := b.Put(ctx, key, bytes.NewReader(data), int64(size), map[string]string{"sha256": "abc"}); err != nil {
				t.Fatalf("Put(%d bytes): %v", size, err)
			}
			rc, info, err := b.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("Get returned %d bytes that differ from the %d put", len(got), len(data))
			}
			if info.Size != int64(size) || info.Key != key {
				t.Errorf("Get info = %+v, want key %s size %d", info, key, size)
			}
			if info.Metadata["sha256"] != "abc" {
				t.Errorf("Get metadata = %v, want sha256=abc", info.Metadata)
			}
		}
	})

	t.Run("ReadInChunks", func(t *testing.T) {
		// Read as age does, in 64 KiB+16 chunks with io.ReadFull, not with
		// ReadAll: some clients misbehave only under this pattern.
		ctx := t.Context()
		key := base + "chunks/obj"
		data := randomBytes(5<<20 + 123)
		if err := b.Put(ctx, key, bytes.NewReader(data), int64(len(data)), nil); err != nil {
			t.Fatal(err)
		}
		rc, info, err := b.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if info.Size != int64(len(data)) {
			t.Errorf("Get size = %d, want %d", info.Size, len(data))
		}
		var got []byte
		buf := make([]byte, 64<<10+16)
		for {
			n, err := io.ReadFull(rc, buf)
			got = append(got, buf[:n]...)
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("read %d bytes in chunks, want the %d put", len(got), len(data))
		}
	})

	t.Run("PutUnknownSize", func(t *testing.T) {
		ctx := t.Context()
		for _, size := range []int{10, 20<<20 + 3} { // below and above one S3 part
			key := fmt.Sprintf("%sunknown/%d", base, size)
			data := randomBytes(size)
			// OneByteReader-like short reads must not confuse size detection.
			r := iotest.HalfReader(bytes.NewReader(data))
			if err := b.Put(ctx, key, r, -1, nil); err != nil {
				t.Fatalf("Put(unknown size %d): %v", size, err)
			}
			info, err := b.Stat(ctx, key)
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if info.Size != int64(size) {
				t.Fatalf("Stat size = %d, want %d", info.Size, size)
			}
			rc, _, err := b.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			rc.Close()
			if !bytes.Equal(got, data) {
				t.Fatal("content differs after unknown-size Put")
			}
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		ctx := t.Context()
		key := base + "overwrite/obj"
		mustPut(t, b, key, "first", map[string]string{"v": "1"})
		mustPut(t, b, key, "second", map[string]string{"v": "2"})
		if got := mustGet(t, b, key); got != "second" {
			t.Fatalf("after overwrite got %q", got)
		}
		info, err := b.Stat(ctx, key)
		if err != nil || info.Metadata["v"] != "2" {
			t.Fatalf("Stat after overwrite = %+v, %v; want metadata v=2", info, err)
		}
	})

	t.Run("CreateNeverReplaces", func(t *testing.T) {
		ctx := t.Context()
		key := base + "create/obj"
		if err := b.Create(ctx, key, strings.NewReader("first"), 5, map[string]string{"v": "1"}); err != nil {
			t.Fatalf("Create on a free key: %v", err)
		}
		err := b.Create(ctx, key, strings.NewReader("second"), 6, map[string]string{"v": "2"})
		if !errors.Is(err, storage.ErrExist) {
			t.Fatalf("Create on a taken key: %v, want ErrExist", err)
		}
		if got := mustGet(t, b, key); got != "first" {
			t.Fatalf("Create replaced the object: got %q", got)
		}
		// Racing creators: exactly one wins.
		race := base + "create/race"
		var wg sync.WaitGroup
		results := make(chan error, 6)
		for i := range 6 {
			wg.Go(func() {
				data := fmt.Sprintf("writer-%d", i)
				results <- b.Create(ctx, race, strings.NewReader(data), int64(len(data)), nil)
			})
		}
		wg.Wait()
		close(results)
		wins := 0
		for err := range results {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrExist):
				t.Errorf("racing Create: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d racing Creates succeeded, want exactly 1", wins)
		}
	})

	t.Run("NotExist", func(t *testing.T) {
		ctx := t.Context()
		key := base + "missing/obj"
		if _, err := b.Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Stat(missing) error = %v, want ErrNotExist", err)
		}
		if _, _, err := b.Get(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Errorf("Get(missing) error = %v, want ErrNotExist", err)
		}
		if err := b.Delete(ctx, key); err != nil {
			t.Errorf("Delete(missing) = %v, want nil", err)
		}
	})

	t.Run("FailedPutLeavesOldObject", func(t *testing.T) {
		ctx := t.Context()
		key := base + "failed/obj"
		mustPut(t, b, key, "old", nil)
		boom := errors.New("disk on fire")
		r := io.MultiReader(strings.NewReader("partial new content"), iotest.ErrReader(boom))
		if err := b.Put(ctx, key, r, -1, nil); err == nil {
			t.Fatal("Put with a failing reader succeeded")
		}
		if got := mustGet(t, b, key); got != "old" {
			t.Fatalf("after failed Put got %q, want the old object", got)
		}
		fresh := base + "failed/fresh"
		r = io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(boom))
		if err := b.Put(ctx, fresh, r, -1, nil); err == nil {
			t.Fatal("Put with a failing reader succeeded")
		}
		if _, err := b.Stat(ctx, fresh); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("failed Put left an object: Stat error = %v", err)
		}
		var keys []string
		_ = b.List(ctx, base+"failed/", func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil })
		if want := []string{key}; fmt.Sprint(keys) != fmt.Sprint(want) {
			t.Fatalf("List after failed Puts = %v, want %v (no temporary objects)", keys, want)
		}
	})

	t.Run("SizeMismatch", func(t *testing.T) {
		ctx := t.Context()
		key := base + "mismatch/obj"
		if err := b.Put(ctx, key, strings.NewReader("short"), 100, nil); err == nil {
			t.Fatal("Put with a wrong size succeeded")
		}
		if _, err := b.Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("Put with wrong size left an object: %v", err)
		}
	})

	t.Run("ListOrderAndPrefix", func(t *testing.T) {
		ctx := t.Context()
		p := base + "list/"
		keys := []string{"a/b", "a.b", "a/c/d", "b", "ab", "a-z"}
		for _, k := range keys {
			mustPut(t, b, p+k, k, nil)
		}
		var got []string
		err := b.List(ctx, p, func(oi storage.ObjectInfo) error {
			got = append(got, strings.TrimPrefix(oi.Key, p))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a-z", "a.b", "a/b", "a/c/d", "ab", "b"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List = %v, want %v", got, want)
		}
		got = nil
		_ = b.List(ctx, p+"a/", func(oi storage.ObjectInfo) error {
			got = append(got, strings.TrimPrefix(oi.Key, p))
			return nil
		})
		if want := []string{"a/b", "a/c/d"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List(a/) = %v, want %v", got, want)
		}
		got = nil
		_ = b.List(ctx, p+"a", func(oi storage.ObjectInfo) error {
			got = append(got, strings.TrimPrefix(oi.Key, p))
			return nil
		})
		if want := []string{"a-z", "a.b", "a/b", "a/c/d", "ab"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("List(a) = %v, want %v", got, want)
		}
		stop := errors.New("stop")
		n := 0
		err = b.List(ctx, p, func(storage.ObjectInfo) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("List with failing fn: err=%v after %d calls, want stop after 1", err, n)
		}
		if err := b.List(ctx, base+"nothing-here/", func(storage.ObjectInfo) error { return errors.New("called") }); err != nil {
			t.Errorf("List(empty prefix) = %v", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		ctx := t.Context()
		key := base + "delete/obj"
		mustPut(t, b, key, "x", nil)
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Stat(ctx, key); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("Stat after Delete = %v, want ErrNotExist", err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		ctx := t.Context()
		for _, key := range []string{"", "/abs", "a/../b", "a//b", "./a", "a/"} {
			if err := b.Put(ctx, key, strings.NewReader("x"), 1, nil); err == nil {
				t.Errorf("Put(%q) succeeded, want an invalid key error", key)
			}
			if _, _, err := b.Get(ctx, key); err == nil || errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Get(%q) = %v, want an invalid key error", key, err)
			}
			if _, err := b.Stat(ctx, key); err == nil || errors.Is(err, storage.ErrNotExist) {
				t.Errorf("Stat(%q) = %v, want an invalid key error", key, err)
			}
			if err := b.Delete(ctx, key); err == nil {
				t.Errorf("Delete(%q) succeeded, want an invalid key error", key)
			}
		}
	})

	t.Run("MetadataIsACopy", func(t *testing.T) {
		ctx := t.Context()
		key := base + "meta-copy"
		if err := b.Put(ctx, key, strings.NewReader("x"), 1, map[string]string{"k": "v"}); err != nil {
			t.Fatal(err)
		}
		info, err := b.Stat(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		info.Metadata["k"] = "changed"
		if again, err := b.Stat(ctx, key); err != nil || again.Metadata["k"] != "v" {
			t.Fatalf("after changing a returned map, Stat = %v, %v", again.Metadata, err)
		}
	})

	t.Run("ConcurrentPuts", func(t *testing.T) {
		ctx := t.Context()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("%sconcurrent/%d", base, i)
				errs <- b.Put(ctx, key, strings.NewReader(key), int64(len(key)), nil)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		for i := range 8 {
			key := fmt.Sprintf("%sconcurrent/%d", base, i)
			if got := mustGet(t, b, key); got != key {
				t.Fatalf("%s = %q", key, got)
			}
		}
	})

	t.Cleanup(func() {
		ctx := context.Background()
		_ = b.List(ctx, base, func(oi storage.ObjectInfo) error { return b.Delete(ctx, oi.Key) })
	})
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustPut(t *testing.T, b storage.Backend, key, data string, meta map[string]string) {
	t.Helper()
	if err := b.Put(t.Context(), key, strings.NewReader(data), int64(len(data)), meta); err != nil {
		t.Fatalf("Put(%s): %v", key, err)
	}
}

func mustGet(t *testing.T, b storage.Backend, key string) string {
	t.Helper()
	rc, _, err := b.Get(t.Context(), key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(data)
}
