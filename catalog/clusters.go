package catalog

import (
	"context"
	"sort"
	"strings"

	"github.com/pgward/pgward/storage"
)

// ListClusters returns the names of the clusters a repository holds: those
// with a cluster.json, written by the first push. It reads the whole
// listing (one LIST request per thousand objects on S3): name the clusters
// in the configuration for what runs often.
func ListClusters(ctx context.Context, store storage.Backend) ([]string, error) {
	var names []string
	err := store.List(ctx, "", func(oi storage.ObjectInfo) error {
		name, rest, ok := strings.Cut(oi.Key, "/")
		if ok && rest == "cluster.json" && ValidateClusterName(name) == nil {
			names = append(names, name)
		}
		return nil
	})
	sort.Strings(names)
	return names, err
}
