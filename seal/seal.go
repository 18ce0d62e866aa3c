// Package seal is the pipeline every stored object goes through: zstd
// compression, then age encryption to X25519 recipients, and the reverse on
// the way back. Both directions stream; nothing is held whole in memory.
//
// A sealed object is a standard age file whose plaintext is a standard zstd
// stream, so an operator with the identity can read it by hand:
//
//	age -d -i key.txt OBJECT.zst.age | zstd -d > OBJECT
//
// An object stored with encryption explicitly turned off is the bare zstd
// stream (suffix .zst).
package seal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
)

// Object name suffixes, chosen so the name says how to read it back.
const (
	SuffixEncrypted = ".zst.age"
	SuffixPlain     = ".zst"
)

var (
	ageMagic  = []byte("age-encryption.org/")
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// ErrNoIdentity is returned when an encrypted object is opened without an
// identity.
var ErrNoIdentity = errors.New("object is encrypted and no identity was given (--identity-file or PGWARD_IDENTITY_FILE)")

// ErrWrongIdentity is returned when none of the identities can decrypt an
// object.
var ErrWrongIdentity = errors.New("object is encrypted to a different key: the identity file does not match any of its recipients")

// ErrCorrupt is returned (wrapped) when an object is truncated, tampered
// with, or not a sealed object at all.
var ErrCorrupt = errors.New("sealed object is corrupt or truncated")

// Level is a zstd speed/ratio trade-off.
type Level = zstd.EncoderLevel

// Compression levels.
const (
	LevelFastest = zstd.SpeedFastest
	LevelDefault = zstd.SpeedDefault
)

// ChunkSize is how much plaintext goes into one zstd frame. Frames are
// compressed in parallel and concatenated, which any zstd decoder reads as
// one stream; 2 MiB frames cost under 0.5% of ratio on WAL.
const ChunkSize = 2 << 20

// Sealer seals objects to a fixed set of recipients. With no recipients it
// only compresses; callers decide whether that is allowed. A Sealer is safe
// for concurrent use.
type Sealer struct {
	recipients  []age.Recipient
	enc         *zstd.Encoder // only EncodeAll is used: safe for concurrent use
	concurrency int
}

// NewSealer returns a Sealer for recipients. concurrency bounds the frames
// compressed at once per object; 0 means GOMAXPROCS.
func NewSealer(recipients []age.Recipient, level Level, concurrency int) *Sealer {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	// age authenticates every 64 KiB of an encrypted object, so the zstd
	// frame checksum (4% of the CPU) is only written to plain objects.
	// The options are valid constants, so NewWriter cannot fail here.
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderCRC(len(recipients) == 0),
		zstd.WithEncoderConcurrency(concurrency), zstd.WithZeroFrames(true))
	return &Sealer{recipients: recipients, enc: enc, concurrency: concurrency}
}

// Encrypted reports whether objects are encrypted.
func (s *Sealer) Encrypted() bool { return len(s.recipients) > 0 }

// Suffix returns the object name suffix for what this Sealer writes.
func (s *Sealer) Suffix() string {
	if s.Encrypted() {
		return SuffixEncrypted
	}
	return SuffixPlain
}

// NewWriter returns a writer that seals what is written to it into dst.
// Close must be called to finish the object; it does not close dst. The
// writer holds at most 2×concurrency chunks in memory.
func (s *Sealer) NewWriter(dst io.Writer) (io.WriteCloser, error) {
	w := &writer{enc: s.enc, out: dst, maxInFlight: 2 * s.concurrency, sem: make(chan struct{}, s.concurrency)}
	if s.Encrypted() {
		aw, err := age.Encrypt(dst, s.recipients...)
		if err != nil {
			return nil, fmt.Errorf("seal: start encryption: %w", err)
		}
		w.encrypted, w.out = aw, aw
	}
	return w, nil
}

// SealBytes seals data, which is already in memory (or mapped), into dst.
// It compresses straight from data, without copying it into chunks.
func (s *Sealer) SealBytes(dst io.Writer, data []byte) error {
	wc, err := s.NewWriter(dst)
	if err != nil {
		return err
	}
	w := wc.(*writer)
	for len(data) > 0 && w.err == nil {
		n := min(len(data), ChunkSize)
		w.submitFrame(&frame{in: data[:n:n], borrowed: true, done: make(chan struct{})})
		data = data[n:]
	}
	return w.Close()
}

// writer cuts the plaintext into chunks, compresses them concurrently into
// independent zstd frames, and writes the frames in order.
type writer struct {
	enc         *zstd.Encoder
	out         io.Writer
	encrypted   io.WriteCloser
	buf         []byte   // the chunk being filled
	pending     []*frame // compressing, oldest first
	free        [][]byte // spare chunk buffers
	maxInFlight int
	sem         chan struct{} // bounds concurrent EncodeAll calls
	frames      int
	err         error
	closed      bool
}

type frame struct {
	in, out  []byte
	borrowed bool // in belongs to the caller of SealBytes: never reuse it
	done     chan struct{}
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = w.chunk()
		}
		c := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+c]
		p, n = p[c:], n+c
		if len(w.buf) == cap(w.buf) {
			if err := w.submit(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// ReadFrom reads straight into chunk buffers, saving a copy.
func (w *writer) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for w.err == nil {
		if w.buf == nil {
			w.buf = w.chunk()
		}
		n, err := r.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		total += int64(n)
		if len(w.buf) == cap(w.buf) {
			if serr := w.submit(); serr != nil {
				return total, serr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	return total, w.err
}

func (w *writer) chunk() []byte {
	if n := len(w.free); n > 0 {
		b := w.free[n-1]
		w.free = w.free[:n-1]
		return b[:0]
	}
	return make([]byte, 0, ChunkSize)
}

// submit starts compressing the current chunk, first writing out the
// oldest frame if too many are in flight.
func (w *writer) submit() error {
	return w.submitFrame(&frame{in: w.buf, done: make(chan struct{})})
}

func (w *writer) submitFrame(f *frame) error {
	w.buf = nil
	w.frames++
	w.sem <- struct{}{}
	go func() {
		defer close(f.done)
		f.out = w.enc.EncodeAll(f.in, make([]byte, 0, len(f.in)/4))
		<-w.sem
	}()
	w.pending = append(w.pending, f)
	if len(w.pending) >= w.maxInFlight {
		return w.flushOldest()
	}
	return nil
}

func (w *writer) flushOldest() error {
	f := w.pending[0]
	w.pending = w.pending[1:]
	<-f.done
	if !f.borrowed {
		w.free = append(w.free, f.in)
	}
	if w.err == nil {
		if _, err := w.out.Write(f.out); err != nil {
			w.err = fmt.Errorf("seal: write: %w", err)
		}
	}
	return w.err
}

// Close compresses what is left, writes every frame in order and finishes
// the encryption. It waits for all compression goroutines, even on error.
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil && (len(w.buf) > 0 || w.frames == 0) {
		if w.buf == nil {
			w.buf = []byte{} // an empty object is one empty frame
		}
		w.submit()
	}
	for len(w.pending) > 0 {
		w.flushOldest()
	}
	if w.err != nil {
		return w.err
	}
	if w.encrypted != nil {
		if err := w.encrypted.Close(); err != nil {
			return fmt.Errorf("seal: finish encryption: %w", err)
		}
	}
	return nil
}

// Opener opens sealed objects with a set of identities (none for a host
// that only writes).
type Opener struct {
	identities  []age.Identity
	decoderOnce sync.Once
	decoder     *zstd.Decoder // for OpenBytes
}

// NewOpener returns an Opener for identities.
func NewOpener(identities []age.Identity) *Opener {
	return &Opener{identities: identities}
}

// decrypt starts decrypting an age file, naming the usual failures.
func (o *Opener) decrypt(src io.Reader) (io.Reader, error) {
	if len(o.identities) == 0 {
		return nil, ErrNoIdentity
	}
	r, err := age.Decrypt(src, o.identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, ErrWrongIdentity
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return r, nil
}

// CanDecrypt reports whether the Opener holds any identity.
func (o *Opener) CanDecrypt() bool { return len(o.identities) > 0 }

// NewReader returns a reader of the plaintext sealed in src. It tells an
// encrypted object from a plain one by its first bytes, so it does not
// depend on the object's name. Errors from the reader wrap ErrCorrupt when
// the object is damaged. The caller must Close the reader; it does not
// close src.
func (o *Opener) NewReader(src io.Reader) (io.ReadCloser, error) {
	sr := &sourceReader{r: src}
	br := bufio.NewReaderSize(sr, 64<<10)
	head, err := br.Peek(len(ageMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unseal: read header: %w", err)
	}
	var plain io.Reader
	switch {
	case bytes.HasPrefix(head, ageMagic):
		r, err := o.decrypt(br)
		if errors.Is(err, ErrCorrupt) {
			return nil, (&reader{src: sr}).failure(err)
		}
		if err != nil {
			return nil, err
		}
		plain = r
	case bytes.HasPrefix(head, zstdMagic):
		plain = br
	default:
		return nil, fmt.Errorf("%w: neither an age file nor a zstd stream", ErrCorrupt)
	}
	dec, err := zstd.NewReader(plain, zstd.WithDecoderConcurrency(2), zstd.WithDecoderLowmem(false))
	if err != nil {
		return nil, fmt.Errorf("unseal: start decompression: %w", err)
	}
	return &reader{dec: dec, src: sr}, nil
}

// sourceReader remembers the source's error.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

type reader struct {
	dec *zstd.Decoder
	src *sourceReader
}

// failure names what failed: the source (a dropped connection is not
// corruption, and must not look like it), or the object.
func (r *reader) failure(err error) error {
	if r.src.err != nil && r.src.err != io.EOF {
		return fmt.Errorf("unseal: read: %w", r.src.err)
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	if err != nil && err != io.EOF {
		err = r.failure(err)
	}
	return n, err
}

// WriteTo lets io.Copy use the decoder's own buffers. Only failures of
// the source are reported as corruption; a failing destination (a full
// disk) is returned as it is.
func (r *reader) WriteTo(w io.Writer) (int64, error) {
	dw := &destWriter{w: w}
	n, err := r.dec.WriteTo(dw)
	if err != nil && dw.err == nil {
		err = r.failure(err)
	}
	return n, err
}

type destWriter struct {
	w   io.Writer
	err error
}

func (d *destWriter) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err != nil {
		d.err = err
	}
	return n, err
}

func (r *reader) Close() error {
	r.dec.Close() // stops the decoder's goroutines
	return nil
}
