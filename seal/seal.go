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

// Sealer seals objects to a fixed set of recipients. With no recipients it
// only compresses; callers decide whether that is allowed. A Sealer is safe
// for concurrent use.
type Sealer struct {
	recipients  []age.Recipient
	level       Level
	concurrency int
}

// NewSealer returns a Sealer for recipients. concurrency bounds the
// compression goroutines per object; 0 means GOMAXPROCS.
func NewSealer(recipients []age.Recipient, level Level, concurrency int) *Sealer {
	return &Sealer{recipients: recipients, level: level, concurrency: concurrency}
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
// Close must be called to finish the object; it does not close dst.
func (s *Sealer) NewWriter(dst io.Writer) (io.WriteCloser, error) {
	var encrypted io.WriteCloser
	inner := dst
	if s.Encrypted() {
		w, err := age.Encrypt(dst, s.recipients...)
		if err != nil {
			return nil, fmt.Errorf("seal: start encryption: %w", err)
		}
		encrypted, inner = w, w
	}
	opts := []zstd.EOption{zstd.WithEncoderLevel(s.level), zstd.WithEncoderCRC(true)}
	if s.concurrency > 0 {
		opts = append(opts, zstd.WithEncoderConcurrency(s.concurrency))
	}
	enc, err := zstd.NewWriter(inner, opts...)
	if err != nil {
		return nil, fmt.Errorf("seal: start compression: %w", err)
	}
	return &writer{enc: enc, encrypted: encrypted}, nil
}

type writer struct {
	enc       *zstd.Encoder
	encrypted io.WriteCloser
}

func (w *writer) Write(p []byte) (int, error) { return w.enc.Write(p) }

// ReadFrom lets io.Copy hand whole buffers to the encoder.
func (w *writer) ReadFrom(r io.Reader) (int64, error) { return w.enc.ReadFrom(r) }

func (w *writer) Close() error {
	if err := w.enc.Close(); err != nil {
		return fmt.Errorf("seal: finish compression: %w", err)
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
	identities []age.Identity
}

// NewOpener returns an Opener for identities.
func NewOpener(identities []age.Identity) *Opener {
	return &Opener{identities: identities}
}

// CanDecrypt reports whether the Opener holds any identity.
func (o *Opener) CanDecrypt() bool { return len(o.identities) > 0 }

// NewReader returns a reader of the plaintext sealed in src. It tells an
// encrypted object from a plain one by its first bytes, so it does not
// depend on the object's name. Errors from the reader wrap ErrCorrupt when
// the object is damaged. The caller must Close the reader; it does not
// close src.
func (o *Opener) NewReader(src io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	head, err := br.Peek(len(ageMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("unseal: read header: %w", err)
	}
	var plain io.Reader
	switch {
	case bytes.HasPrefix(head, ageMagic):
		if len(o.identities) == 0 {
			return nil, ErrNoIdentity
		}
		r, err := age.Decrypt(br, o.identities...)
		if err != nil {
			var noMatch *age.NoIdentityMatchError
			if errors.As(err, &noMatch) {
				return nil, ErrWrongIdentity
			}
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
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
	return &reader{dec: dec}, nil
}

type reader struct {
	dec *zstd.Decoder
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
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
		err = fmt.Errorf("%w: %v", ErrCorrupt, err)
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
