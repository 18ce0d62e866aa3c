package seal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"filippo.io/age"
)

// GenerateIdentity returns a new X25519 identity in age's key file format
// (with a comment line naming its recipient) and its recipient string.
func GenerateIdentity() (keyFile []byte, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, "", fmt.Errorf("generate identity: %w", err)
	}
	recipient = id.Recipient().String()
	keyFile = fmt.Appendf(nil, "# pgward identity: keep secret; restore hosts only\n# public key: %s\n%s\n", recipient, id.String())
	return keyFile, recipient, nil
}

// ParseRecipients parses a comma-separated list of age1… recipients.
// Empty entries are ignored.
func ParseRecipients(list string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
			return nil, errors.New("a recipient must be a public key (age1…), but a secret key was given: keep the secret key on restore hosts only")
		}
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			// age's message quotes the input; a recipient is public, but keep
			// the message short and pointed.
			return nil, fmt.Errorf("invalid recipient %q: want an age X25519 public key (age1…), as printed by `pgward keys generate`", abbreviate(s))
		}
		out = append(out, r)
	}
	return out, nil
}

// LoadIdentities reads an age identity file. Its contents never appear in
// errors.
func LoadIdentities(path string) ([]age.Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity file: %w", err)
	}
	defer f.Close()
	ids, err := ParseIdentities(f)
	if err != nil {
		return nil, fmt.Errorf("identity file %s: %w", path, err)
	}
	return ids, nil
}

// ParseIdentities parses identities in age's key file format.
func ParseIdentities(r io.Reader) ([]age.Identity, error) {
	ids, err := age.ParseIdentities(r)
	if err != nil {
		// age's parse errors can quote the offending line, which may be a
		// secret key: replace them.
		return nil, errors.New("not an age identity file (want lines starting with AGE-SECRET-KEY-1, as written by `pgward keys generate`)")
	}
	return ids, nil
}

func abbreviate(s string) string {
	if len(s) > 16 {
		return s[:12] + "…"
	}
	return s
}

// Fingerprint names a recipient in object metadata without its whole
// key: the first 16 hex digits of the SHA-256 of its text (age1…).
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(recipient)))
	return hex.EncodeToString(sum[:8])
}

// Fingerprints are the sorted fingerprints of the recipients objects are
// sealed to, nil when they are not encrypted.
func (s *Sealer) Fingerprints() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, r := range s.recipients {
		if st, ok := r.(fmt.Stringer); ok {
			out = append(out, Fingerprint(st.String()))
		}
	}
	sort.Strings(out)
	return out
}

// IdentityRecipients are the recipients (age1…) of the X25519 identities
// among ids: whose objects those identities open.
func IdentityRecipients(ids []age.Identity) []string {
	var out []string
	for _, id := range ids {
		if x, ok := id.(*age.X25519Identity); ok {
			out = append(out, x.Recipient().String())
		}
	}
	return out
}
