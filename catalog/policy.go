package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgward/pgward/seal"
	"github.com/pgward/pgward/storage"
)

// PolicyFormat is the version of the policy.json format.
const PolicyFormat = 1

// Policy is a cluster's retention policy, policy.json: defined once in the
// repository and read by check, prune, the sidecar and backup delete, so
// that they cannot disagree about what must be kept.
type Policy struct {
	Format int `json:"format"`
	// WindowSeconds is the point-in-time recovery window.
	WindowSeconds int64 `json:"window_seconds"`
	// Dumps keep the newest of each of the last KeepDaily days, then of
	// KeepWeekly ISO weeks, then of KeepMonthly months, in DumpTimezone.
	KeepDaily    int       `json:"keep_daily"`
	KeepWeekly   int       `json:"keep_weekly"`
	KeepMonthly  int       `json:"keep_monthly"`
	DumpTimezone string    `json:"dump_timezone"`
	Updated      time.Time `json:"updated,omitzero"`
}

// Defaults of a policy nobody set.
const (
	DefaultKeepDaily    = 7
	DefaultKeepWeekly   = 4
	DefaultKeepMonthly  = 12
	DefaultDumpTimezone = "Europe/Berlin"
)

// DefaultPolicy is the policy of a repository that stores none.
func DefaultPolicy() Policy {
	return Policy{
		Format: PolicyFormat, WindowSeconds: int64(DefaultRetentionWindow / time.Second),
		KeepDaily: DefaultKeepDaily, KeepWeekly: DefaultKeepWeekly, KeepMonthly: DefaultKeepMonthly,
		DumpTimezone: DefaultDumpTimezone,
	}
}

// Window is the point-in-time recovery window.
func (p Policy) Window() time.Duration { return time.Duration(p.WindowSeconds) * time.Second }

// Limits of what a policy may say: a window shorter than an hour is a
// typo, and one the repository would be asked to keep for ten years.
const (
	MinRetentionWindow = time.Hour
	MaxRetentionWindow = 10 * 366 * 24 * time.Hour
	maxKeep            = 10000
)

// Validate refuses a policy that cannot be meant, from a flag or from a
// forged policy.json alike.
func (p Policy) Validate() error {
	switch w := p.Window(); {
	case p.WindowSeconds <= 0 || w < MinRetentionWindow:
		return fmt.Errorf("retention window %s: want at least %s", w, MinRetentionWindow)
	case p.WindowSeconds > int64(MaxRetentionWindow/time.Second):
		return fmt.Errorf("retention window of %d seconds: want at most ten years", p.WindowSeconds)
	}
	for _, k := range []struct {
		name string
		n    int
	}{{"keep-daily", p.KeepDaily}, {"keep-weekly", p.KeepWeekly}, {"keep-monthly", p.KeepMonthly}} {
		if k.n < 0 || k.n > maxKeep {
			return fmt.Errorf("%s %d: want 0 to %d", k.name, k.n, maxKeep)
		}
	}
	if p.KeepDaily+p.KeepWeekly+p.KeepMonthly == 0 {
		return errors.New("keep-daily, keep-weekly and keep-monthly are all 0: every dump would be deleted")
	}
	if _, err := time.LoadLocation(p.DumpTimezone); err != nil || p.DumpTimezone == "" || p.DumpTimezone == "Local" {
		return fmt.Errorf("dump time zone %q: want an IANA zone such as Europe/Berlin or UTC", p.DumpTimezone)
	}
	return nil
}

// PolicyKey is the key of the cluster's policy.json.
func (l Layout) PolicyKey() string { return l.Cluster + "/policy.json" }

// maxPolicySize bounds what is read back: a policy is a few hundred bytes.
const maxPolicySize = 64 << 10

// LoadPolicy reads the cluster's policy, checking its signature as trust
// says. found is false when the repository stores none. A policy that is
// forged, unreadable or unreasonable is an error: what is deleted must not
// follow it.
func LoadPolicy(ctx context.Context, store storage.Backend, l Layout, trust seal.Trust) (p Policy, found bool, err error) {
	key := l.PolicyKey()
	rc, _, err := store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotExist) {
		return DefaultPolicy(), false, nil
	}
	if err != nil {
		return Policy{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	data, err := seal.ReadAll(rc, maxPolicySize)
	rc.Close()
	if err != nil {
		return Policy{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	doc, err := trust.VerifyDocument(data, key)
	if err != nil {
		return Policy{}, false, err
	}
	p, err = ParsePolicy(doc)
	if err != nil {
		return Policy{}, false, fmt.Errorf("%s: %w", key, err)
	}
	return p, true, nil
}

// ParsePolicy reads policy.json.
func ParsePolicy(doc []byte) (Policy, error) {
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("not a policy: %w", err)
	}
	if p.Format != PolicyFormat {
		return Policy{}, fmt.Errorf("policy format %d is not supported by this pgward (it reads format %d): upgrade pgward", p.Format, PolicyFormat)
	}
	return p, p.Validate()
}

// StorePolicy writes the cluster's policy, signed by key when there is one,
// in one PUT.
func StorePolicy(ctx context.Context, store storage.Backend, l Layout, key *seal.SigningKey, p Policy) error {
	p.Format = PolicyFormat
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	if b, err = key.SignDocument(append(b, '\n'), l.PolicyKey()); err != nil {
		return err
	}
	if err := store.Put(ctx, l.PolicyKey(), bytes.NewReader(b), int64(len(b)), nil); err != nil {
		return fmt.Errorf("store %s: %w", l.PolicyKey(), err)
	}
	return nil
}

// PolicyField names a field of a Policy that a command option sets.
type PolicyField int

// The fields options set.
const (
	FieldWindow PolicyField = iota
	FieldKeepDaily
	FieldKeepWeekly
	FieldKeepMonthly
	FieldDumpTimezone
)

// PolicyOption is one retention option of a command, with its value
// (Window, N or Zone, by Field) and where it came from.
type PolicyOption struct {
	Field  PolicyField
	Flag   string // its name, for messages
	Window time.Duration
	N      int
	Zone   string
	// Set: given at all (command line, environment or file), not left at
	// its default. Typed: on the command line.
	Set, Typed bool
	// Schedule: it is also a schedule's zone (the sidecar's
	// --dump-timezone), so it is never compared with the stored policy.
	Schedule bool
}

func (o PolicyOption) text() string {
	switch o.Field {
	case FieldWindow:
		return formatWindow(o.Window)
	case FieldDumpTimezone:
		return o.Zone
	}
	return strconv.Itoa(o.N)
}

func (p Policy) text(f PolicyField) string {
	switch f {
	case FieldWindow:
		return formatWindow(p.Window())
	case FieldKeepDaily:
		return strconv.Itoa(p.KeepDaily)
	case FieldKeepWeekly:
		return strconv.Itoa(p.KeepWeekly)
	case FieldKeepMonthly:
		return strconv.Itoa(p.KeepMonthly)
	}
	return p.DumpTimezone
}

func (p *Policy) apply(o PolicyOption) {
	switch o.Field {
	case FieldWindow:
		p.WindowSeconds = int64(o.Window / time.Second)
	case FieldKeepDaily:
		p.KeepDaily = o.N
	case FieldKeepWeekly:
		p.KeepWeekly = o.N
	case FieldKeepMonthly:
		p.KeepMonthly = o.N
	case FieldDumpTimezone:
		p.DumpTimezone = o.Zone
	}
}

// formatWindow writes a window in days when it is whole days.
func formatWindow(d time.Duration) string {
	if d != 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// ErrPolicyDisagrees is returned (wrapped) when an option typed on the
// command line says otherwise than the stored policy.
var ErrPolicyDisagrees = errors.New("the retention policy stored in the repository decides")

// ResolvePolicy is the policy a command acts on. Without a stored policy
// (found false) it is the defaults with the command's options applied.
// With one, the stored policy decides: an option that says otherwise is
// an error when typed on the command line, and otherwise ignored and
// returned in ignored, to be warned about (an old PGWARD_PRUNE_WINDOW in
// a unit file must not stop a sidecar). A schedule's zone is never
// compared.
func ResolvePolicy(stored Policy, found bool, opts []PolicyOption) (p Policy, ignored []string, err error) {
	p = stored
	if !found {
		p = DefaultPolicy()
		for _, o := range opts {
			p.apply(o) // the option, or its default
		}
		return p, nil, p.Validate()
	}
	var refused []string
	for _, o := range opts {
		if !o.Set || o.Schedule || o.text() == p.text(o.Field) {
			continue
		}
		what := fmt.Sprintf("--%s %s (the policy says %s)", o.Flag, o.text(), p.text(o.Field))
		if o.Typed {
			refused = append(refused, what)
		} else {
			ignored = append(ignored, what)
		}
	}
	if len(refused) > 0 {
		return Policy{}, nil, fmt.Errorf("%s: %w; change it with 'pgward retention set', or drop the option", strings.Join(refused, ", "), ErrPolicyDisagrees)
	}
	return p, ignored, p.Validate()
}
