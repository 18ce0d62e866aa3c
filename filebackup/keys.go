package filebackup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"filippo.io/age"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// KindKey is the kind of a sealed domain key object.
const KindKey = "file-key"

// DomainName names the key domain of host's data sealed to recipients
// (age1… strings): each host has its own domains, so each keeps its own
// secret, and a change of recipients starts a new domain (whose packs the
// new recipients can read).
func DomainName(host string, recipients []string) string {
	keys := append([]string(nil), recipients...)
	sort.Strings(keys)
	sum := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	var b strings.Builder
	for _, c := range strings.ToLower(host) {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	h := strings.TrimLeft(b.String(), "-.")
	if len(h) > 40 {
		h = h[:40]
	}
	if h == "" {
		h = "host"
	}
	return h + "-" + hex.EncodeToString(sum[:6])
}

// keyRecord is what a domain's key object holds: its secret, for restore
// hosts (which hold an identity), and its recipients, for prune, which
// rewrites indexes sealed to them.
type keyRecord struct {
	Domain     string   `json:"domain"`
	KeyID      string   `json:"key_id"`
	Secret     string   `json:"secret"` // base64
	Recipients []string `json:"recipients"`
}

// KeyKey is where the key object of secret keyID of domain is stored.
func KeyKey(domain, keyID, suffix string) string {
	return Prefix(domain) + "keys/" + keyID + ".json" + suffix
}

// DomainKey is one secret of a domain, as a restore or prune host reads it.
type DomainKey struct {
	Domain     string
	Secret     Secret
	Recipients []string
}

// LoadDomainKeys reads every key object of domain with o's identities:
// key id → key. An object that does not open is an error: a domain whose
// secret cannot be read cannot be checked.
func LoadDomainKeys(ctx context.Context, b storage.Backend, o *seal.Opener, domain string) (map[string]DomainKey, error) {
	if err := ValidateDomain(domain); err != nil {
		return nil, err
	}
	prefix := Prefix(domain) + "keys/"
	var keys []string
	if err := b.List(ctx, prefix, func(oi storage.ObjectInfo) error { keys = append(keys, oi.Key); return nil }); err != nil {
		return nil, err
	}
	out := map[string]DomainKey{}
	for _, key := range keys {
		rc, _, err := b.Get(ctx, key)
		if err != nil {
			return nil, err
		}
		sealed, err := seal.ReadAll(rc, 1<<20)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		plain, err := o.OpenBytes(sealed, 1<<16, seal.Expect{Key: key, Kind: KindKey, Size: -1})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		var rec keyRecord
		dec := json.NewDecoder(bytes.NewReader(plain))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("%s: not a key record", key)
		}
		raw, err := base64.StdEncoding.DecodeString(rec.Secret)
		var s Secret
		if err != nil || len(raw) != len(s) {
			return nil, fmt.Errorf("%s: not a key record (its secret is not 32 bytes)", key)
		}
		copy(s[:], raw)
		if rec.Domain != domain || s.KeyID() != rec.KeyID || (key != KeyKey(domain, rec.KeyID, seal.SuffixEncrypted) && key != KeyKey(domain, rec.KeyID, seal.SuffixPlain)) {
			return nil, fmt.Errorf("%s: a key record of another place (%s/%s)", key, rec.Domain, rec.KeyID)
		}
		out[rec.KeyID] = DomainKey{Domain: domain, Secret: s, Recipients: rec.Recipients}
	}
	return out, nil
}

// hostSecret returns this host's secret for domain: the one it keeps in
// dir, or a new one, kept there first and then stored sealed to the
// domain's recipients (again on each run until that succeeds).
func hostSecret(ctx context.Context, b storage.Backend, sealer *seal.Sealer, dir, domain string, recipients []string, log *slog.Logger) (Secret, error) {
	file := filepath.Join(dir, domain+".key")
	s, err := LoadSecretFile(file)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return s, fmt.Errorf("files state directory: %w", err)
		}
		if s, err = NewSecret(); err != nil {
			return s, err
		}
		if err := CreateSecretFile(file, s); err != nil {
			return s, err
		}
		log.Info("made a new secret for a files key domain", "domain", domain, "key_id", s.KeyID(), "file", file)
	} else if err != nil {
		return s, err
	}
	key := KeyKey(domain, s.KeyID(), sealer.Suffix())
	if _, err := b.Stat(ctx, key); err == nil {
		return s, nil
	} else if !errors.Is(err, storage.ErrNotExist) {
		return s, err
	}
	rec, _ := json.Marshal(keyRecord{Domain: domain, KeyID: s.KeyID(), Secret: base64.StdEncoding.EncodeToString(s[:]), Recipients: recipients})
	w, err := catalog.NewObjectWriter(ctx, b.Create, key, sealer, seal.Claims{Kind: KindKey}, nil)
	if err != nil {
		return s, err
	}
	if _, err := w.Write(rec); err != nil {
		w.Abort(err)
		return s, err
	}
	if err := w.Close(); err != nil && !errors.Is(err, storage.ErrExist) {
		return s, fmt.Errorf("store %s: %w", key, err)
	}
	return s, nil
}

// parseRecipients turns age1… strings into recipients.
func parseRecipients(keys []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, k := range keys {
		r, err := seal.ParseRecipients(k)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}
