package stack

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
)

// replayUnfinished publishes an OBJECT_FINALIZE notification again for
// every raw object whose lineage is missing or unfinished, and returns how
// many it published.
//
// The local Pub/Sub keeps its messages in memory: a notification published
// before the stack stopped and not yet acknowledged by a worker is gone
// after a restart, while GCS (the emulator's data directory) still holds
// the object. Replaying it is safe: process is idempotent per object
// generation. On GCP, Pub/Sub keeps unacknowledged messages for 7 days and
// nothing like this is needed.
func (s *Stack) replayUnfinished(ctx context.Context) (int, error) {
	bucket := names.RawBucket(s.platform.Prefix)
	var pending []*storage.ObjectAttrs
	it := s.storage.Bucket(bucket).Objects(ctx, nil)
	for {
		attrs, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("replay: list gs://%s: %w", bucket, err)
		}
		id, err := names.RawID(attrs.Name, attrs.Generation)
		if err != nil {
			continue // not an object the pipeline processes
		}
		snap, err := s.firestore.Collection(names.CollectionIngestions).Doc(id).Get(ctx)
		if notFound(err) {
			pending = append(pending, attrs)
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("replay: lineage of %s: %w", attrs.Name, err)
		}
		var ing lineage.Ingestion
		if err := snap.DataTo(&ing); err != nil {
			return 0, fmt.Errorf("replay: lineage of %s: %w", attrs.Name, err)
		}
		if !lineage.Finished(ing.Status) {
			pending = append(pending, attrs)
		}
	}
	if len(pending) == 0 {
		return 0, nil
	}
	ps, err := gcp.NewPubSub(ctx, s.platform)
	if err != nil {
		return 0, fmt.Errorf("replay: %w", err)
	}
	defer ps.Close()
	pub := ps.Publisher("projects/" + s.platform.Project + "/topics/" + names.TopicRawObjects)
	defer pub.Stop()
	for _, a := range pending {
		msg := &pubsub.Message{Attributes: map[string]string{
			"eventType":        "OBJECT_FINALIZE",
			"payloadFormat":    "NONE",
			"bucketId":         a.Bucket,
			"objectId":         a.Name,
			"objectGeneration": strconv.FormatInt(a.Generation, 10),
		}}
		if _, err := pub.Publish(ctx, msg).Get(ctx); err != nil {
			return 0, fmt.Errorf("replay: publish %s: %w", a.Name, err)
		}
	}
	return len(pending), nil
}
