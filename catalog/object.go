package catalog

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/pgward/pgward/seal"
)

// ObjectWriter seals what is written to it into one new object: the one
// sealed write that WAL pushes, backup parts and dumps share. The object
// appears only when Wait returns nil; Abort, or any failure, leaves none.
type ObjectWriter struct {
	key    string
	seal   *seal.Writer
	pipe   *io.PipeWriter
	stored countingWriter
	done   chan error
	err    error
	waited bool
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// PutFunc stores an object: a backend's Create, or its Put where an
// object may be replaced.
type PutFunc func(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string) error

// NewObjectWriter starts the object key, as claims describe it, stored
// with put, which reads the sealed stream as it is written.
func NewObjectWriter(ctx context.Context, put PutFunc, key string, sealer *seal.Sealer, claims seal.Claims, meta map[string]string) (*ObjectWriter, error) {
	claims.Key = key
	meta = WithRecipients(meta, sealer)
	pr, pw := io.Pipe()
	w := &ObjectWriter{key: key, pipe: pw, done: make(chan error, 1)}
	w.stored.w = pw
	// The reader runs first: age writes its header as soon as it starts.
	go func() {
		err := put(ctx, key, pr, -1, meta)
		pr.CloseWithError(err) // unblocks the writer if the backend gave up early
		w.done <- err
	}()
	sw, err := sealer.NewWriter(&w.stored, claims)
	if err != nil {
		pw.CloseWithError(err)
		<-w.done
		return nil, err
	}
	w.seal = sw
	return w, nil
}

// Write seals p into the object.
func (w *ObjectWriter) Write(p []byte) (int, error) { return w.seal.Write(p) }

// ReadFrom seals everything read from r into the object.
func (w *ObjectWriter) ReadFrom(r io.Reader) (int64, error) { return w.seal.ReadFrom(r) }

// Finish ends the sealed stream without waiting for the backend to store
// it; Wait does.
func (w *ObjectWriter) Finish() error {
	err := w.seal.Close()
	w.pipe.CloseWithError(err)
	if err != nil {
		w.err = fmt.Errorf("seal %s: %w", w.key, err)
	}
	return w.err
}

// Wait waits until the object is stored (or not) and says which.
func (w *ObjectWriter) Wait() error {
	if !w.waited {
		w.waited = true
		if err := <-w.done; err != nil && w.err == nil {
			w.err = fmt.Errorf("store %s: %w", w.key, err)
		}
	}
	return w.err
}

// Close is Finish and Wait.
func (w *ObjectWriter) Close() error {
	if err := w.Finish(); err != nil {
		w.Wait()
		return err
	}
	return w.Wait()
}

// Abort gives up the object: nothing is stored.
func (w *ObjectWriter) Abort(err error) {
	w.pipe.CloseWithError(err)
	w.seal.Close()
	w.Wait()
}

// Claims returns what the object claims to be (complete after Finish).
func (w *ObjectWriter) Claims() seal.Claims { return w.seal.Claims() }

// StoredBytes is the sealed size written so far.
func (w *ObjectWriter) StoredBytes() int64 { return w.stored.n }

// MetaRecipients is the metadata key that records whom an object was
// sealed to: the recipients' fingerprints (seal.Fingerprint), comma-
// separated, or "none" when it is not encrypted. 'pgward keys usage'
// counts them, so an old key can be retired after a rotation.
const MetaRecipients = "recipients"

// WithRecipients returns meta (a copy) that records sealer's recipients.
func WithRecipients(meta map[string]string, sealer *seal.Sealer) map[string]string {
	out := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		out[k] = v
	}
	fps := sealer.Fingerprints()
	if len(fps) == 0 {
		out[MetaRecipients] = "none"
	} else {
		out[MetaRecipients] = strings.Join(fps, ",")
	}
	return out
}
