package ops

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The readiness probes of the platform's dependencies. Each asks for
// metadata only, with the permissions the service already has (infra/iam.tf),
// and a "not found" answer counts as up where the resource need not exist:
// the dependency answered.

// The object and the document the probes read; neither exists.
const (
	probeObject     = "readyz-probe"
	probeCollection = "readyz"
	probeDocument   = "probe"
)

// StorageCheck is the check "storage": it reads the metadata of an object
// of bucket that does not exist. That needs only storage.objects.get,
// which every service has on the bucket it reads or checks (reading the
// bucket's own metadata needs storage.buckets.get, which only orchestrate
// has). Cloud Storage answers 404 for a missing bucket as for a missing
// object, so a deleted bucket is not detected here.
func StorageCheck(c *storage.Client, bucket string) Check {
	return Check{Name: "storage", Probe: func(ctx context.Context) error {
		_, err := c.Bucket(bucket).Object(probeObject).Attrs(ctx)
		if err != nil && !errors.Is(err, storage.ErrObjectNotExist) {
			return fmt.Errorf("read object metadata in bucket %s: %w", bucket, err)
		}
		return nil
	}}
}

// FirestoreCheck is the check "firestore": it reads a document that does
// not exist (readyz/probe).
func FirestoreCheck(c *firestore.Client) Check {
	return Check{Name: "firestore", Probe: func(ctx context.Context) error {
		_, err := c.Collection(probeCollection).Doc(probeDocument).Get(ctx)
		if err != nil && status.Code(err) != codes.NotFound {
			return fmt.Errorf("get %s/%s: %w", probeCollection, probeDocument, err)
		}
		return nil
	}}
}

// PubSubCheck is the check "pubsub": it reads the configuration of
// subscription (an id in c's project) through the admin client. A missing
// subscription fails the check: a subscriber has nothing to pull. It needs
// pubsub.subscriptions.get on the subscription (roles/pubsub.viewer; the
// subscriber role has only consume).
func PubSubCheck(c *pubsub.Client, subscription string) Check {
	name := "projects/" + c.Project() + "/subscriptions/" + subscription
	return Check{Name: "pubsub", Probe: func(ctx context.Context) error {
		if _, err := c.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name}); err != nil {
			return fmt.Errorf("get subscription %s: %w", subscription, err)
		}
		return nil
	}}
}

// BigQueryCheck is the check "bigquery": it reads the metadata of dataset
// in c's project; a missing dataset counts as up.
func BigQueryCheck(c *bigquery.Client, dataset string) Check {
	return Check{Name: "bigquery", Probe: func(ctx context.Context) error {
		_, err := c.Dataset(dataset).Metadata(ctx)
		var gerr *googleapi.Error
		if err != nil && !(errors.As(err, &gerr) && gerr.Code == http.StatusNotFound) {
			return fmt.Errorf("get dataset %s: %w", dataset, err)
		}
		return nil
	}}
}
