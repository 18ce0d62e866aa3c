package inventory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pgward/pgward/catalog"
	"github.com/pgward/pgward/storage"
)

// Tally counts stored objects.
type Tally struct {
	Objects int       `json:"objects"`
	Bytes   int64     `json:"bytes"`
	Oldest  time.Time `json:"oldest,omitzero"`
	Newest  time.Time `json:"newest,omitzero"`
}

func (t *Tally) add(oi storage.ObjectInfo) {
	t.Objects++
	t.Bytes += oi.Size
	if t.Oldest.IsZero() || oi.ModTime.Before(t.Oldest) {
		t.Oldest = oi.ModTime
	}
	if oi.ModTime.After(t.Newest) {
		t.Newest = oi.ModTime
	}
}

// RecipientUsage is what one recipient's identity opens.
type RecipientUsage struct {
	Fingerprint string `json:"fingerprint"`
	// Sealed are the objects sealed to it; Only those sealed to it alone,
	// which nothing but its identity opens.
	Sealed Tally `json:"sealed"`
	Only   Tally `json:"only"`
}

// KeyUsage is whom a cluster's sealed objects were sealed to, from what
// each records (catalog.MetaRecipients).
type KeyUsage struct {
	Recipients  []RecipientUsage `json:"recipients"`
	Unencrypted Tally            `json:"unencrypted"`
	// NotRecorded are objects stored before pgward recorded recipients.
	NotRecorded Tally `json:"not_recorded"`
}

// KeyUsageOf reads the recipients every sealed object of layout's cluster
// records: from the listing, or with one Stat per object where the
// listing carries no metadata (S3), jobs at a time.
func KeyUsageOf(ctx context.Context, store storage.Backend, layout catalog.Layout, jobs int) (KeyUsage, error) {
	var objects []storage.ObjectInfo
	err := store.List(ctx, layout.Cluster+"/", func(oi storage.ObjectInfo) error {
		// Sealed objects end in .zst (compressed) or .age (and encrypted);
		// documents (.json), locks and pins are not sealed.
		if strings.HasSuffix(oi.Key, ".age") || strings.HasSuffix(oi.Key, ".zst") {
			objects = append(objects, oi)
		}
		return nil
	})
	if err != nil {
		return KeyUsage{}, fmt.Errorf("list %s: %w", layout.Cluster, err)
	}
	if jobs < 1 {
		jobs = 1
	}
	var (
		wg      sync.WaitGroup
		next    = make(chan int)
		mu      sync.Mutex
		statErr error
	)
	for range jobs {
		wg.Go(func() {
			for i := range next {
				if _, ok := objects[i].Metadata[catalog.MetaRecipients]; ok || ctx.Err() != nil {
					continue
				}
				oi, err := store.Stat(ctx, objects[i].Key)
				if errors.Is(err, storage.ErrNotExist) {
					objects[i].Key = "" // pruned since the listing: not counted
					continue
				}
				if err != nil {
					mu.Lock()
					statErr = fmt.Errorf("stat %s: %w", objects[i].Key, err)
					mu.Unlock()
					continue
				}
				objects[i].Metadata = oi.Metadata
			}
		})
	}
	for i := range objects {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if statErr != nil {
		return KeyUsage{}, statErr
	}
	if err := ctx.Err(); err != nil {
		return KeyUsage{}, err
	}
	var u KeyUsage
	by := map[string]*RecipientUsage{}
	for _, oi := range objects {
		if oi.Key == "" {
			continue
		}
		rec, ok := oi.Metadata[catalog.MetaRecipients]
		switch {
		case !ok:
			u.NotRecorded.add(oi)
			continue
		case rec == "none":
			u.Unencrypted.add(oi)
			continue
		}
		fps := strings.Split(rec, ",")
		for _, fp := range fps {
			r := by[fp]
			if r == nil {
				r = &RecipientUsage{Fingerprint: fp}
				by[fp] = r
			}
			r.Sealed.add(oi)
			if len(fps) == 1 {
				r.Only.add(oi)
			}
		}
	}
	u.Recipients = []RecipientUsage{}
	for _, r := range by {
		u.Recipients = append(u.Recipients, *r)
	}
	sort.Slice(u.Recipients, func(i, j int) bool { return u.Recipients[i].Fingerprint < u.Recipients[j].Fingerprint })
	return u, nil
}
