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
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"
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
	enc         *frameCompressor // safe for concurrent use
	concurrency int
	signer      *SigningKey // nil: objects are not signed
	// Chunk and frame buffers are reused across frames and objects (a
	// backup's parts, a run's segments), so sealing allocates nothing in
	// the steady state and the collector has nothing to chase.
	chunks, frames sync.Pool // *[]byte
}

// maxFrame bounds a compressed chunk (zstd's worst case for ChunkSize).
const maxFrame = ChunkSize + ChunkSize/128 + 1<<10

func getBuf(p *sync.Pool, size int) []byte {
	if b, ok := p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, size)
}

func putBuf(p *sync.Pool, b []byte) {
	b = b[:0]
	p.Put(&b)
}

// SignWith makes the Sealer sign every object with key (nil: unsigned).
func (s *Sealer) SignWith(key *SigningKey) *Sealer {
	s.signer = key
	return s
}

// Signer returns the Sealer's signing key, or nil.
func (s *Sealer) Signer() *SigningKey {
	if s == nil {
		return nil
	}
	return s.signer
}

// NewSealer returns a Sealer for recipients. concurrency bounds the frames
// compressed at once per object; 0 means GOMAXPROCS.
func NewSealer(recipients []age.Recipient, level Level, concurrency int) *Sealer {
	if concurrency <= 0 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	// age authenticates every 64 KiB of an encrypted object, so the zstd
	// frame checksum (4% of the CPU) is only written to plain objects.
	return &Sealer{recipients: recipients, enc: newFrameCompressor(level, len(recipients) == 0, concurrency), concurrency: concurrency}
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

// NewWriter returns a writer that seals what is written to it into dst, as
// the object c describes (its Key and Kind, and for WAL the WAL fields;
// the writer fills in size and checksums). Close must be called to finish
// the object; it does not close dst. The writer holds at most
// 2×concurrency chunks in memory.
//
// An object of KindBackupStream is written already compressed: its bytes
// must be zstd frames, and they are sealed as they are.
func (s *Sealer) NewWriter(dst io.Writer, c Claims) (*Writer, error) {
	w := &Writer{sealer: s, enc: s.enc, out: dst, maxInFlight: 2 * s.concurrency, sem: make(chan struct{}, s.concurrency),
		signer: s.signer, claims: c, sum: xxh3.New128(), digest: sha256.New(), stream: c.Kind == KindBackupStream}
	if s.signer != nil {
		// Refuse what cannot be signed before anything is written.
		probe := c
		probe.Signer = s.signer.public
		if _, err := probe.marshal(); err != nil {
			return nil, err
		}
	}
	if s.Encrypted() {
		aw, err := age.Encrypt(dst, s.recipients...)
		if err != nil {
			return nil, fmt.Errorf("seal: start encryption: %w", err)
		}
		w.encrypted, w.out = aw, aw
	}
	return w, nil
}

// SealBytes seals data, which is already in memory (or mapped), into dst
// and returns what the object claims. It compresses straight from data,
// without copying it into chunks.
func (s *Sealer) SealBytes(dst io.Writer, data []byte, c Claims) (Claims, error) {
	w, err := s.NewWriter(dst, c)
	if err != nil {
		return Claims{}, err
	}
	// Hash the whole file beside the compression, not chunk by chunk.
	w.sum = nil
	var sum xxh3.Uint128
	hashed := make(chan struct{})
	go func(all []byte) {
		defer close(hashed)
		sum = xxh3.Hash128(all)
	}(data)
	w.size = int64(len(data))
	for len(data) > 0 && w.err == nil {
		n := min(len(data), ChunkSize)
		w.submitFrame(&frame{in: data[:n:n], borrowed: true, done: make(chan struct{})})
		data = data[n:]
	}
	<-hashed
	b := sum.Bytes()
	w.claims.Checksum = hex.EncodeToString(b[:])
	if err := w.Close(); err != nil {
		return Claims{}, err
	}
	return w.claims, nil
}

// Writer cuts the plaintext into chunks, compresses them concurrently into
// independent zstd frames, writes the frames in order and, when the Sealer
// signs, a last frame with the signature.
type Writer struct {
	sealer *Sealer
	signer *SigningKey
	claims Claims
	sum    *xxh3.Hasher128 // nil when SealBytes hashes the whole input
	digest hash.Hash       // of the compressed frames
	size   int64

	enc         *frameCompressor
	out         io.Writer
	encrypted   io.WriteCloser
	buf         []byte   // the chunk being filled
	pending     []*frame // compressing, oldest first
	maxInFlight int
	sem         chan struct{} // bounds concurrent EncodeAll calls
	frames      int
	err         error
	closed      bool
	// stream: what is written is zstd frames already, passed on as they
	// are; size and sum are of them
	stream bool
}

type frame struct {
	in, out  []byte
	borrowed bool // in belongs to the caller of SealBytes: never reuse it
	done     chan struct{}
}

// Claims returns what the object claims to be; complete after Close.
func (w *Writer) Claims() Claims { return w.claims }

func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.stream {
		return w.writeStream(p)
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

// writeStream passes on frames compressed elsewhere, checking only that
// the stream starts as zstd does: the reader decodes and checks the rest.
func (w *Writer) writeStream(p []byte) (int, error) {
	if w.size < int64(len(zstdMagic)) {
		head := p[:min(len(p), len(zstdMagic)-int(w.size))]
		if !bytes.Equal(head, zstdMagic[w.size:int(w.size)+len(head)]) {
			w.err = errors.New("seal: a compressed stream must start with a zstd frame")
			return 0, w.err
		}
	}
	w.sum.Write(p)
	w.digest.Write(p)
	w.size += int64(len(p))
	if _, err := w.out.Write(p); err != nil {
		w.err = fmt.Errorf("seal: write: %w", err)
		return 0, w.err
	}
	return len(p), nil
}

// ReadFrom reads straight into chunk buffers, saving a copy.
func (w *Writer) ReadFrom(r io.Reader) (int64, error) {
	if w.stream {
		return io.Copy(onlyWriter{w}, r)
	}
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

func (w *Writer) chunk() []byte { return getBuf(&w.sealer.chunks, ChunkSize) }

// submit starts compressing the current chunk, first writing out the
// oldest frame if too many are in flight.
func (w *Writer) submit() error {
	if w.sum != nil {
		w.sum.Write(w.buf)
		w.size += int64(len(w.buf))
	}
	return w.submitFrame(&frame{in: w.buf, done: make(chan struct{})})
}

func (w *Writer) submitFrame(f *frame) error {
	w.buf = nil
	w.frames++
	w.sem <- struct{}{}
	go func() {
		defer close(f.done)
		f.out = w.enc.compress(getBuf(&w.sealer.frames, w.enc.bound(len(f.in))), f.in)
		<-w.sem
	}()
	w.pending = append(w.pending, f)
	if len(w.pending) >= w.maxInFlight {
		return w.flushOldest()
	}
	return nil
}

func (w *Writer) flushOldest() error {
	f := w.pending[0]
	w.pending = w.pending[1:]
	<-f.done
	if !f.borrowed && cap(f.in) == ChunkSize {
		putBuf(&w.sealer.chunks, f.in)
	}
	if w.err == nil {
		w.digest.Write(f.out)
		if _, err := w.out.Write(f.out); err != nil {
			w.err = fmt.Errorf("seal: write: %w", err)
		}
	}
	// Write does not keep p (io.Writer's contract): the buffer is free.
	if cap(f.out) <= maxFrame {
		putBuf(&w.sealer.frames, f.out)
	}
	return w.err
}

// Close compresses what is left, writes every frame in order and finishes
// the encryption. It waits for all compression goroutines, even on error.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.stream && w.err == nil && w.size < int64(len(zstdMagic)) {
		w.err = errors.New("seal: the compressed stream is empty or truncated")
	}
	if !w.stream && w.err == nil && (len(w.buf) > 0 || w.frames == 0) {
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
	w.claims.Size = w.size
	if w.sum != nil {
		b := w.sum.Sum128().Bytes()
		w.claims.Checksum = hex.EncodeToString(b[:])
	}
	copy(w.claims.Digest[:], w.digest.Sum(nil))
	if w.signer != nil {
		rec, err := w.signer.sign(&w.claims)
		if err != nil {
			return err
		}
		if _, err := w.out.Write(trailer(rec)); err != nil {
			return fmt.Errorf("seal: write: %w", err)
		}
	}
	if w.encrypted != nil {
		if err := w.encrypted.Close(); err != nil {
			return fmt.Errorf("seal: finish encryption: %w", err)
		}
	}
	return nil
}

// Opener opens sealed objects with a set of identities (none for a host
// that only writes), trusting the signers its Trust names.
type Opener struct {
	identities  []age.Identity
	trust       Trust
	decoderOnce sync.Once
	decoder     *zstd.Decoder // for OpenBytes
	frameBufs   sync.Pool     // ChunkSize buffers for OpenBytesTo
}

// NewOpener returns an Opener for identities. Until Trust is set it checks
// no signature, only that a signed object is in its signed place.
func NewOpener(identities []age.Identity) *Opener {
	return &Opener{identities: identities}
}

// SetTrust sets whose signatures the Opener accepts.
func (o *Opener) SetTrust(t Trust) *Opener {
	o.trust = t
	return o
}

// Trust returns whose signatures the Opener accepts.
func (o *Opener) Trust() *Trust { return &o.trust }

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

// Expect is what a reader knows about the object it opens, from where it
// found it: every read checks the object against it.
type Expect struct {
	// Key is where the object was read from; a signed object must have
	// been signed for it.
	Key string
	// Kind is the kind of object expected; "" accepts any.
	Kind string
	// Size is the plaintext size recorded for the object, or -1.
	Size int64
	// Checksum is the hex XXH3-128 of the plaintext recorded for the
	// object, or "".
	Checksum string
}

// NewReader returns a reader of the plaintext sealed in src, which was
// read from where want says. It tells an encrypted object from a plain
// one by its first bytes, so it does not depend on the object's name.
//
// The plaintext is verified as it streams and once more at its end: the
// reader returns io.EOF only after the signature (as the Opener's Trust
// requires), the size and the checksum all hold, so a caller must treat
// what it read as unverified until then. Errors wrap ErrCorrupt when the
// object is damaged, and ErrUnsigned, ErrBadSignature or ErrMisplaced when
// it is not what it claims. The caller must Close the reader; it does not
// close src.
func (o *Opener) NewReader(src io.Reader, want Expect) (*Reader, error) {
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
			return nil, (&Reader{src: sr}).failure(err)
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
	tail := &tailReader{r: plain, digest: sha256.New(), buf: make([]byte, 0, 256<<10)}
	concurrency, plainSum := 2, xxh3.New128()
	if want.Kind == KindBackupStream {
		// Its size and checksum are the stream's, so the plaintext is not
		// hashed. It is one long frame, which a second decoding goroutine
		// only slows (1.75 s for 3.7 GiB with one, 2.66 s with two).
		tail.sum, plainSum, concurrency = xxh3.New128(), nil, 1
	}
	dec, err := zstd.NewReader(tail, zstd.WithDecoderConcurrency(concurrency), zstd.WithDecoderLowmem(false))
	if err != nil {
		return nil, fmt.Errorf("unseal: start decompression: %w", err)
	}
	return &Reader{dec: dec, src: sr, tail: tail, trust: &o.trust, want: want, sum: plainSum}, nil
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

// tailReader passes the compressed stream on to the decoder, hashing it,
// but holds back its last bytes until the end: they may be the signature
// frame, which is not part of what was signed.
type tailReader struct {
	r      io.Reader
	digest hash.Hash
	buf    []byte // read from r, not yet passed on
	off    int    // buf[:off] was passed on
	eof    bool
	record []byte // the signature record, once at the end; nil if none
	// sum and n, when sum is set, hash and count what is passed on: an
	// object whose claims describe its stream
	sum *xxh3.Hasher128
	n   int64
}

func (t *tailReader) Read(p []byte) (int, error) {
	for {
		if avail := len(t.buf) - t.off - maxTrailer; avail > 0 || t.eof {
			if t.eof {
				avail = len(t.buf) - t.off
			}
			if avail == 0 {
				return 0, io.EOF
			}
			n := copy(p, t.buf[t.off:t.off+avail])
			t.digest.Write(p[:n])
			if t.sum != nil {
				t.sum.Write(p[:n])
				t.n += int64(n)
			}
			t.off += n
			return n, nil
		}
		if t.off > 0 && cap(t.buf)-len(t.buf) < 64<<10 {
			t.buf = t.buf[:copy(t.buf, t.buf[t.off:])]
			t.off = 0
		}
		n, err := t.r.Read(t.buf[len(t.buf):cap(t.buf)])
		t.buf = t.buf[:len(t.buf)+n]
		if err == io.EOF {
			t.eof = true
			rest := t.buf[t.off:]
			if start, rec, ok := findTrailer(rest); ok {
				t.record = append([]byte(nil), rec...)
				t.buf = t.buf[:t.off+start]
			}
			continue
		}
		if err != nil {
			return 0, err
		}
	}
}

// Reader reads and verifies the plaintext of one object.
type Reader struct {
	dec    *zstd.Decoder
	src    *sourceReader
	tail   *tailReader
	trust  *Trust
	want   Expect
	sum    *xxh3.Hasher128 // of the plaintext; nil when the claims describe the stream
	n      int64
	claims *Claims // the verified claims of a signed object
	done   bool
}

// failure names what failed: the source (a dropped connection is not
// corruption, and must not look like it), or the object.
func (r *Reader) failure(err error) error {
	if r.src.err != nil && r.src.err != io.EOF {
		return fmt.Errorf("unseal: read: %w", r.src.err)
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

// finish runs at the end of the plaintext: the whole stream must have
// been read, and the object must be what it claims and what was expected.
func (r *Reader) finish() error {
	if r.done {
		return nil
	}
	// The decoder stops at the end of the last frame; anything after it
	// is not part of the object.
	if n, err := io.Copy(io.Discard, r.tail); err != nil {
		return r.failure(err)
	} else if n > 0 {
		return fmt.Errorf("%w: %d bytes after the last frame", ErrCorrupt, n)
	}
	hashed, size := r.sum, r.n
	if r.sum == nil { // the claims describe the stream
		hashed, size = r.tail.sum, r.tail.n
	}
	b := hashed.Sum128().Bytes()
	sum := hex.EncodeToString(b[:])
	if r.tail.record == nil {
		if err := r.trust.unsigned(r.want.Key); err != nil {
			return err
		}
	} else {
		var digest [32]byte
		copy(digest[:], r.tail.digest.Sum(nil))
		c, err := r.trust.verifyRecord(r.tail.record, r.want, digest, size)
		if err != nil {
			return err
		}
		if c.Checksum != sum {
			return fmt.Errorf("%w: its checksum differs from the signed one", ErrBadSignature)
		}
		r.claims = &c
	}
	if r.want.Size >= 0 && size != r.want.Size {
		return fmt.Errorf("%w: %d bytes, %d recorded", ErrCorrupt, size, r.want.Size)
	}
	if r.want.Checksum != "" && sum != r.want.Checksum {
		return fmt.Errorf("%w: its checksum is %s, %s is recorded", ErrCorrupt, shortSum(sum), shortSum(r.want.Checksum))
	}
	r.done = true
	return nil
}

func shortSum(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.dec.Read(p)
	if r.sum != nil {
		r.sum.Write(p[:n])
	}
	r.n += int64(n)
	switch {
	case err == io.EOF:
		if ferr := r.finish(); ferr != nil {
			return n, ferr
		}
	case err != nil:
		err = r.failure(err)
	}
	return n, err
}

// WriteTo lets io.Copy use the decoder's own buffers. Only failures of
// the source are reported as corruption; a failing destination (a full
// disk) is returned as it is.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	dw := &destWriter{w: w, r: r}
	n, err := r.dec.WriteTo(dw)
	if err != nil && dw.err == nil {
		err = r.failure(err)
	}
	if err == nil {
		err = r.finish()
	}
	return n, err
}

// Signed reports whether the object carried a signature that held; valid
// once the reader reached the end.
func (r *Reader) Signed() bool { return r.claims != nil }

// Claims returns the verified claims of a signed object, once the reader
// reached the end.
func (r *Reader) Claims() (Claims, bool) {
	if r.claims == nil {
		return Claims{}, false
	}
	return *r.claims, true
}

type destWriter struct {
	w   io.Writer
	r   *Reader
	err error
}

func (d *destWriter) Write(p []byte) (int, error) {
	if d.r.sum != nil {
		d.r.sum.Write(p)
	}
	d.r.n += int64(len(p))
	n, err := d.w.Write(p)
	if err != nil {
		d.err = err
	}
	return n, err
}

// onlyWriter hides a writer's ReadFrom, so io.Copy does not call it back.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// Close stops the decoder's goroutines.
func (r *Reader) Close() error {
	r.dec.Close()
	return nil
}
