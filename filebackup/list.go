package filebackup

import (
	"context"
	"sort"
	"strings"
	"time"

	"github.com/pgward/pgward/storage"
)

// SnapshotRef is one stored snapshot object: a set's snapshot in one key
// domain. A run over several domains stores one per domain, with one id.
type SnapshotRef struct {
	Domain string    `json:"domain"`
	Set    string    `json:"set"`
	ID     string    `json:"id"`
	Time   time.Time `json:"time"`
	Key    string    `json:"key"`
	Size   int64     `json:"stored_bytes"`
}

// ListAll lists the snapshots of set ("" for every set) in every domain,
// oldest first: what the repository's keys say, without opening any.
func ListAll(ctx context.Context, b storage.Backend, set string) ([]SnapshotRef, error) {
	var out []SnapshotRef
	err := b.List(ctx, "files/", func(oi storage.ObjectInfo) error {
		parts := strings.Split(strings.TrimPrefix(oi.Key, "files/"), "/")
		if len(parts) != 4 || parts[1] != "snapshots" || ValidateDomain(parts[0]) != nil || ValidateSet(parts[2]) != nil {
			return nil
		}
		if set != "" && parts[2] != set {
			return nil
		}
		id, _, ok := strings.Cut(parts[3], ".json")
		t, err := time.Parse("20060102T150405Z", id)
		if !ok || err != nil {
			return nil
		}
		out = append(out, SnapshotRef{Domain: parts[0], Set: parts[2], ID: id, Time: t, Key: oi.Key, Size: oi.Size})
		return nil
	})
	sort.Slice(out, func(i, j int) bool {
		if out[i].ID != out[j].ID {
			return out[i].ID < out[j].ID
		}
		if out[i].Set != out[j].Set {
			return out[i].Set < out[j].Set
		}
		return out[i].Domain < out[j].Domain
	})
	return out, err
}

// Domains lists the key domains the repository holds.
func Domains(ctx context.Context, b storage.Backend) ([]string, error) {
	seen := map[string]bool{}
	err := b.List(ctx, "files/", func(oi storage.ObjectInfo) error {
		d, _, ok := strings.Cut(strings.TrimPrefix(oi.Key, "files/"), "/")
		if ok && ValidateDomain(d) == nil {
			seen[d] = true
		}
		return nil
	})
	var out []string
	for d := range seen {
		out = append(out, d)
	}
	sort.Strings(out)
	return out, err
}
