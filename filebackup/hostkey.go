package filebackup

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"filippo.io/age"
	"golang.org/x/crypto/chacha20poly1305"
)

// The backing-up host cannot read what it stores, yet it must know which
// chunks its domain holds and what its last snapshot recorded (to skip
// unchanged files). Indexes and snapshots, which hold names and chunk ids
// but no file content, are therefore sealed to the domain's recipients and
// also to a reader derived from the domain's secret, which the host keeps.
// Packs, which hold the content, are sealed to the recipients only.
//
// The reader is an age stanza of its own type: the file key wrapped with
// ChaCha20-Poly1305 under a key derived from the secret. age's own
// identities skip a stanza of a type they do not know, so `age -d` with a
// customer's identity opens these objects as usual.

// stanzaType names the secret-derived stanza.
const stanzaType = "pgward-files"

// KeyID names a secret without revealing it: the snapshot header, the
// stanza and the local secret file's pairing with key.age use it.
func (s Secret) KeyID() string {
	b, _ := hkdf.Key(sha256.New, s[:], nil, "pgward files key id", 8)
	return hex.EncodeToString(b)
}

func (s Secret) wrapKey() []byte {
	b, _ := hkdf.Key(sha256.New, s[:], nil, "pgward files metadata reader", chacha20poly1305.KeySize)
	return b
}

// Reader is the age recipient and identity derived from a domain's secret.
type Reader struct {
	id  string
	key []byte
}

// Reader returns the secret's metadata reader.
func (s Secret) Reader() *Reader { return &Reader{id: s.KeyID(), key: s.wrapKey()} }

// Wrap seals an object's file key for the holder of the secret.
func (r *Reader) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	aead, err := chacha20poly1305.NewX(r.key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	body := aead.Seal(nonce, nonce, fileKey, []byte(stanzaType+" "+r.id))
	return []*age.Stanza{{Type: stanzaType, Args: []string{r.id}, Body: body}}, nil
}

// Unwrap opens the file key from this secret's stanza; any other stanza
// is not ours.
func (r *Reader) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(r.key)
	if err != nil {
		return nil, err
	}
	for _, st := range stanzas {
		if st.Type != stanzaType || len(st.Args) != 1 || st.Args[0] != r.id {
			continue
		}
		if len(st.Body) < aead.NonceSize()+aead.Overhead() {
			return nil, errors.New("a pgward-files stanza too short to hold a file key")
		}
		nonce, ct := st.Body[:aead.NonceSize()], st.Body[aead.NonceSize():]
		key, err := aead.Open(nil, nonce, ct, []byte(stanzaType+" "+r.id))
		if err != nil {
			return nil, fmt.Errorf("a pgward-files stanza that does not open with this secret: %w", err)
		}
		return key, nil
	}
	return nil, age.ErrIncorrectIdentity
}
