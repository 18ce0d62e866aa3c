package seal

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Authenticity. age gives confidentiality only: anyone who knows a
// recipient (every archiving host does) can seal an object. So writers
// also sign what they store with an Ed25519 key, and readers that trust
// the writer's public key refuse anything else. The signature travels
// inside the object (docs/decisions/20261202_signed_objects.md): as the
// last frame of the zstd stream, a skippable frame that `zstd -d` passes
// over, or, for JSON documents, as the document's last line.

var (
	// ErrUnsigned is returned (wrapped) when a reader that trusts signers
	// meets an object without a signature.
	ErrUnsigned = errors.New("the object carries no signature (a repository written before signing, or a forgery): " +
		"give --allow-unsigned to read it anyway")
	// ErrBadSignature is returned (wrapped) when an object's signature is
	// invalid, by a signer that is not trusted, or made for other content.
	ErrBadSignature = errors.New("the object's signature does not hold")
	// ErrMisplaced is returned (wrapped) when a validly signed object sits
	// under another key than the one it was signed for: moved, swapped or
	// copied over another object.
	ErrMisplaced = errors.New("the object was signed for another place in the repository")
)

// Kinds of object, as signed: a reader checks that an object is of the
// kind it expects.
const (
	KindWAL            = "wal"
	KindBackupPart     = "backup-part"
	KindBackupManifest = "backup-manifest"
	// KindBackupStream is a backup archive the server compressed: its
	// zstd stream is sealed as it came, so its Size and Checksum are the
	// stream's, not the plaintext's (decompressing it only to hash it
	// would cost a backup a third of its time).
	KindBackupStream = "backup-stream"
	KindDump         = "dump"
	KindDumpTables   = "dump-tables"
	KindDocument     = "document"
)

const (
	signingKeyPrefix = "PGWARD-SIGNING-KEY-1"
	publicKeyPrefix  = "pgwsig1"
	recordVersion    = "pgward-signature 1"
	// maxRecord bounds a signature record, so a reader holds back at most
	// this many bytes of a stream while it looks for one.
	maxRecord = 4096
	// skippableMagic is the first skippable zstd frame magic (RFC 8878
	// §3.1.2) with the low nibble 0xE: pgward's signature frame.
	skippableMagic = 0x184D2A5E
	footerMagic    = "PGWS"
	// frameOverhead is the frame header (magic, size) and the footer
	// (record length, "PGWS") around a record.
	frameOverhead = 16
	// maxTrailer is the longest signature frame.
	maxTrailer = maxRecord + frameOverhead
)

var keyEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// PublicKey is a writer's Ed25519 public key, written pgwsig1….
type PublicKey [ed25519.PublicKeySize]byte

// String returns the key as `pgward keys generate --signing` prints it.
func (k PublicKey) String() string {
	return publicKeyPrefix + strings.ToLower(keyEncoding.EncodeToString(k[:]))
}

// ParsePublicKey parses one pgwsig1… key.
func ParsePublicKey(s string) (PublicKey, error) {
	var k PublicKey
	rest, ok := strings.CutPrefix(s, publicKeyPrefix)
	b, err := keyEncoding.DecodeString(strings.ToUpper(rest))
	if !ok || err != nil || len(b) != len(k) {
		if strings.HasPrefix(s, signingKeyPrefix) {
			return k, errors.New("a trusted signer must be a public key (pgwsig1…), but a secret signing key was given: keep it on the hosts that write")
		}
		return k, fmt.Errorf("invalid signer %q: want a pgwsig1… public key, as printed by `pgward keys generate --signing`", abbreviate(s))
	}
	copy(k[:], b)
	return k, nil
}

// ParseTrustedSigners parses a comma-separated list of public keys.
// Empty entries are ignored.
func ParseTrustedSigners(list string) ([]PublicKey, error) {
	var out []PublicKey
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		k, err := ParsePublicKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// SigningKey is a writer's Ed25519 private key.
type SigningKey struct {
	private ed25519.PrivateKey
	public  PublicKey
}

// Public returns the key readers must trust.
func (k *SigningKey) Public() PublicKey { return k.public }

// GenerateSigningKey returns a new signing key in pgward's key file format
// (with a comment naming its public key) and the public key.
func GenerateSigningKey() (keyFile []byte, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate signing key: %w", err)
	}
	var pk PublicKey
	copy(pk[:], pub)
	keyFile = fmt.Appendf(nil, "# pgward signing key: keep secret; hosts that write only\n# public key: %s\n%s%s\n",
		pk, signingKeyPrefix, keyEncoding.EncodeToString(priv.Seed()))
	return keyFile, pk.String(), nil
}

// LoadSigningKey reads a signing key file. Its contents never appear in
// errors.
func LoadSigningKey(path string) (*SigningKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key file: %w", err)
	}
	k, err := ParseSigningKey(b)
	if err != nil {
		return nil, fmt.Errorf("signing key file %s: %w", path, err)
	}
	return k, nil
}

// ParseSigningKey parses a key file written by GenerateSigningKey.
func ParseSigningKey(b []byte) (*SigningKey, error) {
	var found *SigningKey
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		seed, err := keyEncoding.DecodeString(strings.TrimPrefix(line, signingKeyPrefix))
		if !strings.HasPrefix(line, signingKeyPrefix) || err != nil || len(seed) != ed25519.SeedSize || found != nil {
			return nil, errors.New("not a pgward signing key file (want one line starting with " + signingKeyPrefix +
				", as written by `pgward keys generate --signing`)")
		}
		priv := ed25519.NewKeyFromSeed(seed)
		found = &SigningKey{private: priv}
		copy(found.public[:], priv.Public().(ed25519.PublicKey))
	}
	if found == nil {
		return nil, errors.New("no signing key in the file (want a line starting with " + signingKeyPrefix + ")")
	}
	return found, nil
}

// Claims are what a signed object says it is. The writer sets Key, Kind
// and, for WAL, the WAL fields; the sealer adds Size, Checksum and Digest.
type Claims struct {
	// Key is where the object is stored in the repository.
	Key string
	// Kind is one of the Kind constants.
	Kind string
	// Size is the plaintext length in bytes.
	Size int64
	// Checksum is the hex XXH3-128 of the plaintext.
	Checksum string
	// Digest is the SHA-256 of the stored stream before the signature
	// (the zstd frames; a document's bytes): it binds the content.
	Digest [32]byte
	// Timeline, Address and SystemIdentifier describe a WAL file (0 when
	// not known): its timeline, the LSN its first page starts at, and the
	// system it belongs to.
	Timeline         uint32
	Address          uint64
	SystemIdentifier uint64
	// Signer is the public key that made the signature.
	Signer PublicKey
}

// marshal writes the signed message: one field a line, in a fixed order.
func (c *Claims) marshal() ([]byte, error) {
	if !validField(c.Key) || !validField(c.Kind) || c.Key == "" {
		return nil, fmt.Errorf("seal: cannot sign key %q of kind %q: empty or control characters", c.Key, c.Kind)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nsigner %s\nkey %s\nkind %s\nsize %d\nxxh3-128 %s\nsha256 %x\n",
		recordVersion, c.Signer, c.Key, c.Kind, c.Size, c.Checksum, c.Digest)
	if c.Timeline != 0 || c.Address != 0 || c.SystemIdentifier != 0 {
		fmt.Fprintf(&b, "timeline %d\naddress %016X\nsystem-identifier %d\n", c.Timeline, c.Address, c.SystemIdentifier)
	}
	if b.Len() > maxRecord-100 {
		return nil, fmt.Errorf("seal: signature record for %q is too long", abbreviate(c.Key))
	}
	return b.Bytes(), nil
}

func validField(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// sign returns the record: the message and its signature line.
func (k *SigningKey) sign(c *Claims) ([]byte, error) {
	c.Signer = k.public
	msg, err := c.marshal()
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(k.private, msg)
	return fmt.Appendf(msg, "signature %s\n", base64.StdEncoding.EncodeToString(sig)), nil
}

// parseRecord splits a record into its claims, message and signature,
// refusing anything that is not exactly what sign writes.
func parseRecord(rec []byte) (c Claims, msg, sig []byte, err error) {
	bad := func(what string) (Claims, []byte, []byte, error) {
		return Claims{}, nil, nil, fmt.Errorf("%w: malformed signature record (%s)", ErrBadSignature, what)
	}
	if len(rec) > maxRecord || len(rec) == 0 || rec[len(rec)-1] != '\n' {
		return bad("length")
	}
	i := bytes.LastIndexByte(rec[:len(rec)-1], '\n')
	if i < 0 {
		return bad("no signature line")
	}
	msg = rec[:i+1]
	sigB64, ok := bytes.CutPrefix(rec[i+1:len(rec)-1], []byte("signature "))
	if !ok {
		return bad("no signature line")
	}
	sig, err = base64.StdEncoding.DecodeString(string(sigB64))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return bad("signature encoding")
	}
	lines := strings.Split(strings.TrimSuffix(string(msg), "\n"), "\n")
	fields := []string{"signer", "key", "kind", "size", "xxh3-128", "sha256", "timeline", "address", "system-identifier"}
	if lines[0] != recordVersion {
		return bad("unknown version")
	}
	lines = lines[1:]
	if len(lines) != 6 && len(lines) != 9 {
		return bad("field count")
	}
	vals := make([]string, len(lines))
	for j, line := range lines {
		name, v, ok := strings.Cut(line, " ")
		if !ok || name != fields[j] {
			return bad("field " + strconv.Itoa(j+1))
		}
		vals[j] = v
	}
	if c.Signer, err = ParsePublicKey(vals[0]); err != nil {
		return bad("signer")
	}
	c.Key, c.Kind, c.Checksum = vals[1], vals[2], vals[4]
	if c.Size, err = strconv.ParseInt(vals[3], 10, 64); err != nil || c.Size < 0 || strconv.FormatInt(c.Size, 10) != vals[3] {
		return bad("size")
	}
	if d, err := hex.DecodeString(vals[5]); err != nil || len(d) != len(c.Digest) || hex.EncodeToString(d) != vals[5] {
		return bad("sha256")
	} else {
		copy(c.Digest[:], d)
	}
	if len(vals) == 9 {
		tli, err1 := strconv.ParseUint(vals[6], 10, 32)
		addr, err2 := strconv.ParseUint(vals[7], 16, 64)
		sysid, err3 := strconv.ParseUint(vals[8], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || len(vals[7]) != 16 {
			return bad("WAL fields")
		}
		c.Timeline, c.Address, c.SystemIdentifier = uint32(tli), addr, sysid
	}
	// The message must be exactly what marshal writes, so one set of
	// claims has one encoding.
	if again, err := c.marshal(); err != nil || !bytes.Equal(again, msg) {
		return bad("not canonical")
	}
	return c, msg, sig, nil
}

// Trust is what a reader accepts.
type Trust struct {
	// Signers are the public keys whose signatures are accepted. With
	// none, signatures are not checked (nothing is authenticated), but a
	// signed object must still be in its signed place.
	Signers []PublicKey
	// AllowUnsigned accepts objects without a signature even when Signers
	// are given: a repository written before signing.
	AllowUnsigned bool
	// OnUnsigned, when set, is told of each unsigned object accepted.
	OnUnsigned func(key string)
}

// verifyRecord checks a signature record against what was read: the
// object's key, its kind, the digest of its stream and its plaintext size.
// It returns the verified claims.
func (t *Trust) verifyRecord(rec []byte, want Expect, digest [32]byte, size int64) (Claims, error) {
	c, msg, sig, err := parseRecord(rec)
	if err != nil {
		return Claims{}, err
	}
	if len(t.Signers) > 0 {
		trusted := false
		for _, k := range t.Signers {
			if k == c.Signer {
				trusted = true
				break
			}
		}
		if !trusted {
			return Claims{}, fmt.Errorf("%w: signed by %s, which is not a --trusted-signer", ErrBadSignature, c.Signer)
		}
		if !ed25519.Verify(c.Signer[:], msg, sig) {
			return Claims{}, fmt.Errorf("%w: the signature by %s is invalid (the object was altered or forged)", ErrBadSignature, c.Signer)
		}
	}
	switch {
	case want.Key != "" && c.Key != want.Key:
		return Claims{}, fmt.Errorf("%w: it was signed as %s (moved, swapped or copied over another object)", ErrMisplaced, c.Key)
	case want.Kind != "" && c.Kind != want.Kind:
		return Claims{}, fmt.Errorf("%w: it was signed as a %s object, not a %s one", ErrMisplaced, c.Kind, want.Kind)
	case c.Digest != digest:
		return Claims{}, fmt.Errorf("%w: its content differs from what was signed", ErrBadSignature)
	case c.Size != size:
		return Claims{}, fmt.Errorf("%w: %d bytes, signed as %d", ErrBadSignature, size, c.Size)
	}
	return c, nil
}

// unsigned decides about an object that carries no signature.
func (t *Trust) unsigned(key string) error {
	if len(t.Signers) > 0 && !t.AllowUnsigned {
		return ErrUnsigned
	}
	if t.OnUnsigned != nil {
		t.OnUnsigned(key)
	}
	return nil
}

// trailer frames a record as a skippable zstd frame whose last eight
// bytes say how long it is, so a reader can find it from the end.
func trailer(rec []byte) []byte {
	out := make([]byte, 0, len(rec)+frameOverhead)
	out = binary.LittleEndian.AppendUint32(out, skippableMagic)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(rec)+8))
	out = append(out, rec...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(rec)))
	return append(out, footerMagic...)
}

// findTrailer reports where a signature frame starts in tail, the end of
// a stream, and the record it holds; ok is false when tail does not end
// in one.
func findTrailer(tail []byte) (start int, rec []byte, ok bool) {
	n := len(tail)
	if n < frameOverhead || string(tail[n-4:]) != footerMagic {
		return 0, nil, false
	}
	l := int(binary.LittleEndian.Uint32(tail[n-8 : n-4]))
	if l > maxRecord || l+frameOverhead > n {
		return 0, nil, false
	}
	start = n - l - frameOverhead
	if binary.LittleEndian.Uint32(tail[start:]) != skippableMagic || binary.LittleEndian.Uint32(tail[start+4:]) != uint32(l+8) {
		return 0, nil, false
	}
	return start, tail[start+8 : start+8+l], true
}

// Documents: JSON written in the clear (backup.json, dump.json,
// cluster.json) is signed by a last line of its own,
//
//	{"pgward-signature":"<base64 of the record>"}
//
// which JSON decoders that read one value never see.
const documentSignaturePrefix = `{"pgward-signature":"`

// SignDocument returns doc, which must end in a newline, followed by its
// signature line for key. Without a signing key it returns doc as it is.
func (k *SigningKey) SignDocument(doc []byte, key string) ([]byte, error) {
	if k == nil {
		return doc, nil
	}
	if len(doc) == 0 || doc[len(doc)-1] != '\n' {
		return nil, errors.New("seal: a signed document must end in a newline")
	}
	c := Claims{Key: key, Kind: KindDocument, Size: int64(len(doc)), Digest: sha256Sum(doc)}
	rec, err := k.sign(&c)
	if err != nil {
		return nil, err
	}
	out := append(append([]byte{}, doc...), documentSignaturePrefix...)
	out = base64.StdEncoding.AppendEncode(out, rec)
	return append(out, "\"}\n"...), nil
}

// VerifyDocument checks a document read from key and returns it without
// its signature line.
func (t *Trust) VerifyDocument(data []byte, key string) ([]byte, error) {
	doc, _, err := t.VerifyDocumentTrusted(data, key)
	return doc, err
}

// VerifyDocumentTrusted is VerifyDocument that also reports whether the
// document was signed by a trusted signer (not merely accepted unsigned,
// or read with no signer trusted): what it says may then steer where a
// restore writes.
func (t *Trust) VerifyDocumentTrusted(data []byte, key string) (doc []byte, trusted bool, err error) {
	doc, rec, signed := splitDocument(data)
	if !signed {
		if err := t.unsigned(key); err != nil {
			return nil, false, fmt.Errorf("%s: %w", key, err)
		}
		return data, false, nil
	}
	if rec == nil {
		return nil, false, fmt.Errorf("%s: %w: malformed signature line", key, ErrBadSignature)
	}
	if _, err := t.verifyRecord(rec, Expect{Key: key, Kind: KindDocument}, sha256Sum(doc), int64(len(doc))); err != nil {
		return nil, false, fmt.Errorf("%s: %w", key, err)
	}
	return doc, len(t.Signers) > 0, nil
}

// splitDocument splits a signed document into the document and its
// record (nil when the signature line is malformed); signed is false when
// it has no signature line.
func splitDocument(data []byte) (doc, rec []byte, signed bool) {
	body := bytes.TrimSuffix(data, []byte("\n"))
	i := bytes.LastIndexByte(body, '\n')
	last := body[i+1:]
	if i < 0 || !bytes.HasPrefix(last, []byte(documentSignaturePrefix)) {
		return data, nil, false
	}
	enc, ok := bytes.CutSuffix(last[len(documentSignaturePrefix):], []byte(`"}`))
	rec, err := base64.StdEncoding.DecodeString(string(enc))
	if !ok || err != nil {
		return data[:i+1], nil, true
	}
	return data[:i+1], rec, true
}

// DocumentSigner returns who signed a document, without checking the
// signature: a writer uses it to see whether it must sign the document
// anew (after a key rotation).
func DocumentSigner(data []byte) (PublicKey, bool) {
	_, rec, signed := splitDocument(data)
	if !signed || rec == nil {
		return PublicKey{}, false
	}
	c, _, _, err := parseRecord(rec)
	return c.Signer, err == nil
}

// DocumentSigned reports whether data ends in a signature line (whether
// or not it holds).
func DocumentSigned(data []byte) bool {
	body := bytes.TrimSuffix(data, []byte("\n"))
	return bytes.HasPrefix(body[bytes.LastIndexByte(body, '\n')+1:], []byte(documentSignaturePrefix))
}

// ReadAll reads at most max bytes from r, failing beyond.
func ReadAll(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than %d bytes", max)
	}
	return b, nil
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }
