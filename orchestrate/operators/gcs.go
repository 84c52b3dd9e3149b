package operators

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/orchestrate/dag"
)

// GCSObjectSensor is done when at least MinObjects (default 1) objects exist
// under Prefix in Bucket. Prefix is a function of the task context; nil
// means the whole bucket.
type GCSObjectSensor struct {
	Client     *storage.Client
	Bucket     string
	Prefix     func(tc *dag.TaskContext) string
	MinObjects int
}

// Poke lists the prefix, page by page, until it has seen MinObjects objects.
func (s *GCSObjectSensor) Poke(ctx context.Context, tc *dag.TaskContext) (bool, string, error) {
	if s.Client == nil || s.Bucket == "" {
		return false, "", errors.New("gcs sensor: Client and Bucket are required")
	}
	prefix := ""
	if s.Prefix != nil {
		prefix = s.Prefix(tc)
	}
	want := max(s.MinObjects, 1)
	q := &storage.Query{Prefix: prefix}
	if err := q.SetAttrSelection([]string{"Name"}); err != nil {
		return false, "", fmt.Errorf("list gs://%s/%s: %w", s.Bucket, prefix, err)
	}
	it := s.Client.Bucket(s.Bucket).Objects(ctx, q)
	found := 0
	for found < want {
		_, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return false, "", fmt.Errorf("list gs://%s/%s: %w", s.Bucket, prefix, err)
		}
		found++
	}
	if found < want {
		return false, fmt.Sprintf("%d of %d objects under gs://%s/%s", found, want, s.Bucket, prefix), nil
	}
	return true, "", nil
}
