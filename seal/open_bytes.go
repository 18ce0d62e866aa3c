package seal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/xxh3"
)

// OpenBytes unseals a whole object held in memory and returns the
// plaintext. pgward's objects are independent zstd frames that record
// their content size, so the frames are decompressed in parallel, each
// straight into its place in the result; an object of any other shape is
// decoded as one stream. maxSize bounds the plaintext; a larger object
// returns an error wrapping ErrTooLarge and the caller should stream it.
// The object is verified against want as NewReader's are; the plaintext
// is returned only when it holds.
func (o *Opener) OpenBytes(sealed []byte, maxSize int64, want Expect) ([]byte, error) {
	plain, _, err := o.OpenBytesClaims(sealed, maxSize, want)
	return plain, err
}

// OpenBytesClaims is OpenBytes that also returns the verified claims of a
// signed object (nil for an unsigned one).
func (o *Opener) OpenBytesClaims(sealed []byte, maxSize int64, want Expect) ([]byte, *Claims, error) {
	compressed, record, err := o.openFrames(sealed)
	if err != nil {
		return nil, nil, err
	}
	plain, err := o.decodeBytes(compressed, maxSize)
	if err != nil {
		return nil, nil, err
	}
	described := plain // what the claims describe
	if want.Kind == KindBackupStream {
		described = compressed
	}
	claims, err := o.verifyOpened(record, compressed, want, checksumHex(described), int64(len(described)))
	if err != nil {
		return nil, nil, err
	}
	return plain, claims, nil
}

// OpenBytesTo unseals a whole object held in memory into w, frame by
// frame, with a few frame buffers instead of the whole plaintext: a
// segment fetched this way touches a fifth of the memory, and the page
// faults and collections that cost more than its decompression go
// (issue 12). It returns the plaintext's length and the verified claims
// of a signed object. What w receives is unverified until OpenBytesTo
// returns nil. A plaintext over maxSize returns an error wrapping
// ErrTooLarge, having written at most maxSize+1 bytes of it. Objects of
// another shape (a backup stream, frames without their content size, or
// larger than ChunkSize) are streamed through NewReader.
func (o *Opener) OpenBytesTo(w io.Writer, sealed []byte, maxSize int64, want Expect) (int64, *Claims, error) {
	compressed, record, err := o.openFrames(sealed)
	if err != nil {
		return 0, nil, err
	}
	frames, total, ok := splitFrames(compressed)
	if ok && total > uint64(maxSize) {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, total)
	}
	for _, f := range frames {
		ok = ok && f.size <= ChunkSize // larger frames are not pgward's: stream them
	}
	if !ok || want.Kind == KindBackupStream {
		r, err := o.NewReader(bytes.NewReader(sealed), want)
		if err != nil {
			return 0, nil, err
		}
		defer r.Close()
		n, err := io.Copy(w, io.LimitReader(r, maxSize+1))
		if err == nil && n > maxSize {
			err = fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxSize)
		}
		if err == nil {
			// The limit stopped short of the end, where the reader verifies.
			_, err = io.Copy(io.Discard, r)
		}
		if err != nil {
			return n, nil, err
		}
		c, signed := r.Claims()
		if !signed {
			return n, nil, nil
		}
		return n, &c, nil
	}
	decoder := o.frameDecoder()
	type decoded struct {
		out  []byte
		err  error
		done chan struct{}
	}
	// Frames decode ahead of the one being written, in order, two at a
	// time (a WAL command has two cores at most to itself).
	const ahead = 2
	pending := make([]*decoded, len(frames))
	start := func(i int) {
		f := frames[i]
		d := &decoded{done: make(chan struct{})}
		pending[i] = d
		buf := getBuf(&o.frameBufs, ChunkSize)
		go func() {
			defer close(d.done)
			got, err := decoder.DecodeAll(compressed[f.start:f.end], buf[:0])
			if err == nil && uint64(len(got)) != f.size {
				err = fmt.Errorf("frame holds %d bytes, its header says %d", len(got), f.size)
			}
			d.out, d.err = got, err
		}()
	}
	for i := 0; i < min(ahead, len(frames)); i++ {
		start(i)
	}
	sum := xxh3.New128()
	var n int64
	var firstErr error
	for i := range frames {
		d := pending[i]
		<-d.done
		pending[i] = nil
		if firstErr == nil && d.err != nil {
			firstErr = fmt.Errorf("%w: %v", ErrCorrupt, d.err)
		}
		if firstErr == nil {
			sum.Write(d.out)
			n += int64(len(d.out))
			if _, err := w.Write(d.out); err != nil {
				firstErr = err
			}
		}
		if cap(d.out) == ChunkSize {
			putBuf(&o.frameBufs, d.out)
		}
		if next := i + ahead; next < len(frames) && firstErr == nil {
			start(next)
		}
	}
	for _, d := range pending { // after an error: let the decoders finish
		if d != nil {
			<-d.done
		}
	}
	if firstErr != nil {
		return n, nil, firstErr
	}
	b := sum.Sum128().Bytes()
	claims, err := o.verifyOpened(record, compressed, want, hex.EncodeToString(b[:]), n)
	return n, claims, err
}

// openFrames decrypts a sealed object held in memory and splits off its
// signature record (nil when unsigned).
func (o *Opener) openFrames(sealed []byte) (compressed, record []byte, err error) {
	compressed, err = o.decryptBytes(sealed)
	if err != nil {
		return nil, nil, err
	}
	tailStart := max(0, len(compressed)-maxTrailer)
	if start, rec, ok := findTrailer(compressed[tailStart:]); ok {
		record = rec
		compressed = compressed[:tailStart+start]
	}
	return compressed, record, nil
}

// verifyOpened checks an object opened in memory, whose described bytes
// (the plaintext, or a backup stream's frames) have checksum sum and
// length size, against its signature record and what want records.
func (o *Opener) verifyOpened(record, compressed []byte, want Expect, sum string, size int64) (*Claims, error) {
	var claims *Claims
	if record == nil {
		if err := o.trust.unsigned(want.Key); err != nil {
			return nil, err
		}
	} else {
		c, err := o.trust.verifyRecord(record, want, sha256.Sum256(compressed), size)
		if err != nil {
			return nil, err
		}
		if c.Checksum != sum {
			return nil, fmt.Errorf("%w: its checksum differs from the signed one", ErrBadSignature)
		}
		claims = &c
	}
	if want.Size >= 0 && size != want.Size {
		return nil, fmt.Errorf("%w: %d bytes, %d recorded", ErrCorrupt, size, want.Size)
	}
	if want.Checksum != "" && sum != want.Checksum {
		return nil, fmt.Errorf("%w: its checksum is %s, %s is recorded", ErrCorrupt, shortSum(sum), shortSum(want.Checksum))
	}
	return claims, nil
}

func checksumHex(b []byte) string {
	s := xxh3.Hash128(b).Bytes()
	return hex.EncodeToString(s[:])
}

// decryptBytes returns the zstd stream of a sealed object in memory.
func (o *Opener) decryptBytes(sealed []byte) ([]byte, error) {
	compressed := sealed
	switch {
	case bytes.HasPrefix(sealed, ageMagic):
		r, err := o.decrypt(bytes.NewReader(sealed))
		if err != nil {
			return nil, err
		}
		// The plaintext of an age file is at most its size.
		buf := bytes.NewBuffer(make([]byte, 0, len(sealed)))
		if _, err := buf.ReadFrom(r); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		compressed = buf.Bytes()
	case bytes.HasPrefix(sealed, zstdMagic):
	default:
		return nil, fmt.Errorf("%w: neither an age file nor a zstd stream", ErrCorrupt)
	}
	return compressed, nil
}

// decodeBytes decompresses a zstd stream held in memory.
func (o *Opener) decodeBytes(compressed []byte, maxSize int64) ([]byte, error) {
	frames, total, ok := splitFrames(compressed)
	if !ok {
		return o.decodeStream(compressed, maxSize)
	}
	if total > uint64(maxSize) {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, total)
	}
	out := make([]byte, total)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	decoder := o.frameDecoder()
	sem := make(chan struct{}, decoderConcurrency)
	for _, f := range frames {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			dst := out[f.offset : f.offset : f.offset+f.size]
			got, err := decoder.DecodeAll(compressed[f.start:f.end], dst)
			if err == nil && uint64(len(got)) != f.size {
				err = fmt.Errorf("frame holds %d bytes, its header says %d", len(got), f.size)
			}
			if err == nil && len(got) > 0 && &got[0] != &out[f.offset] {
				err = errors.New("frame decoded outside its place") // cannot happen: cap is exact
			}
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("%w: %v", ErrCorrupt, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return out, nil
}

// ErrTooLarge is returned (wrapped) by OpenBytes when the plaintext would
// exceed the caller's limit.
var ErrTooLarge = errors.New("object too large to open in memory")

const decoderConcurrency = 4

// frameDecoder returns the Opener's DecodeAll decoder, made on first use.
func (o *Opener) frameDecoder() *zstd.Decoder {
	o.decoderOnce.Do(func() {
		// The options are valid constants, so NewReader cannot fail.
		o.decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(decoderConcurrency), zstd.WithDecoderMaxMemory(1<<30))
	})
	return o.decoder
}

func (o *Opener) decodeStream(compressed []byte, maxSize int64) ([]byte, error) {
	dec, err := zstd.NewReader(bytes.NewReader(compressed), zstd.WithDecoderConcurrency(2))
	if err != nil {
		return nil, err
	}
	defer dec.Close()
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(dec, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if n > maxSize {
		return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, maxSize)
	}
	return buf.Bytes(), nil
}

type frameSpan struct {
	start, end   int    // in the compressed stream
	offset, size uint64 // in the plaintext
}

// splitFrames finds the zstd frames in b by walking their block headers
// (RFC 8878 §3.1.1). It reports ok only when every frame records its
// content size; skippable frames are passed over.
func splitFrames(b []byte) (frames []frameSpan, total uint64, ok bool) {
	for pos := 0; pos < len(b); {
		var h zstd.Header
		if err := h.Decode(b[pos:]); err != nil {
			return nil, 0, false
		}
		if h.Skippable {
			if pos += 8 + int(h.SkippableSize); pos > len(b) {
				return nil, 0, false
			}
			continue
		}
		// Sizes beyond any WAL file (and sums that could wrap) go to the
		// stream decoder, which enforces the caller's limit as it reads.
		if !h.HasFCS || h.FrameContentSize > 1<<32 || total > 1<<40 {
			return nil, 0, false
		}
		p := pos + h.HeaderSize
		for {
			if p+3 > len(b) {
				return nil, 0, false
			}
			bh := uint32(b[p]) | uint32(b[p+1])<<8 | uint32(b[p+2])<<16
			last, typ, size := bh&1 == 1, (bh>>1)&3, int(bh>>3)
			p += 3
			switch typ {
			case 0, 2: // raw, compressed
				p += size
			case 1: // RLE: one byte repeated size times
				p++
			default:
				return nil, 0, false
			}
			if last {
				break
			}
		}
		if h.HasCheckSum {
			p += 4
		}
		if p > len(b) {
			return nil, 0, false
		}
		frames = append(frames, frameSpan{start: pos, end: p, offset: total, size: h.FrameContentSize})
		total += h.FrameContentSize
		pos = p
	}
	return frames, total, len(frames) > 0
}
