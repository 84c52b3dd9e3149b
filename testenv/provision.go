package testenv

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
)

// Provision creates what platform p runs on, as the Terraform in infra/ does
// on GCP: the buckets (versioning on curated, unless the Env keeps data in a
// DataDir, whose storage backend cannot version), the raw-objects topic with the
// raw bucket's OBJECT_FINALIZE notification, the process-raw subscription
// with its dead-letter topic after MaxDeliveryAttempts, a subscription that
// holds dead letters, and the lab dataset with the results table. What
// exists already is left as it is, so Provision can run at every start.
func (e *Env) Provision(ctx context.Context, p config.Platform) error {
	if err := p.Validate(); err != nil {
		return fmt.Errorf("testenv: provision: %w", err)
	}
	if err := e.provisionBuckets(ctx, p); err != nil {
		return err
	}
	if err := e.provisionPubSub(ctx, p); err != nil {
		return err
	}
	e.AddNotification(Notification{
		Bucket:     names.RawBucket(p.Prefix),
		Topic:      topicName(p.Project, names.TopicRawObjects),
		EventTypes: []string{EventFinalize},
	})
	return e.provisionBigQuery(ctx, p)
}

// AddNotification configures a bucket to publish object events to a topic,
// like a GCS notification configuration.
func (e *Env) AddNotification(n Notification) { e.router.add(n) }

func topicName(project, topic string) string { return "projects/" + project + "/topics/" + topic }

func subscriptionName(project, sub string) string {
	return "projects/" + project + "/subscriptions/" + sub
}

func (e *Env) provisionBuckets(ctx context.Context, p config.Platform) error {
	client, err := gcp.NewStorage(ctx, p)
	if err != nil {
		return fmt.Errorf("testenv: provision: %w", err)
	}
	defer client.Close()
	for _, b := range names.Buckets(p.Prefix) {
		attrs := &storage.BucketAttrs{
			Location:                 "EU",
			UniformBucketLevelAccess: storage.UniformBucketLevelAccess{Enabled: true},
			// fake-gcs-server's file backend (DataDir) cannot version.
			VersioningEnabled: b == names.CuratedBucket(p.Prefix) && e.versioning,
		}
		err := client.Bucket(b).Create(ctx, p.Project, attrs)
		var gerr *googleapi.Error
		if errors.As(err, &gerr) && gerr.Code == http.StatusConflict {
			continue
		}
		if err != nil {
			return fmt.Errorf("testenv: create bucket %s: %w", b, err)
		}
	}
	return nil
}

func (e *Env) createTopic(ctx context.Context, project, topic string) error {
	p := e.Platform
	p.Project = project
	client, err := gcp.NewPubSub(ctx, p)
	if err != nil {
		return fmt.Errorf("testenv: create topic %s: %w", topic, err)
	}
	defer client.Close()
	_, err = client.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topicName(project, topic)})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return fmt.Errorf("testenv: create topic %s: %w", topic, err)
	}
	return nil
}

func (e *Env) provisionPubSub(ctx context.Context, p config.Platform) error {
	for _, t := range []string{names.TopicRawObjects, names.TopicRawObjectsDLQ} {
		if err := e.createTopic(ctx, p.Project, t); err != nil {
			return err
		}
	}
	client, err := gcp.NewPubSub(ctx, p)
	if err != nil {
		return fmt.Errorf("testenv: provision subscriptions: %w", err)
	}
	defer client.Close()
	subs := []*pubsubpb.Subscription{
		{
			Name:               subscriptionName(p.Project, names.SubscriptionProcessRaw),
			Topic:              topicName(p.Project, names.TopicRawObjects),
			AckDeadlineSeconds: 60,
			DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{
				DeadLetterTopic:     topicName(p.Project, names.TopicRawObjectsDLQ),
				MaxDeliveryAttempts: names.MaxDeliveryAttempts,
			},
			RetryPolicy: &pubsubpb.RetryPolicy{
				// As on GCP. pstest accepts the policy but redelivers a
				// nacked message at once, unless the Env was started with
				// Options.PubSubRetryBackoff.
				MinimumBackoff: durationpb.New(10 * time.Second),
				MaximumBackoff: durationpb.New(600 * time.Second),
			},
		},
		{
			Name:               subscriptionName(p.Project, names.SubscriptionDeadLetters),
			Topic:              topicName(p.Project, names.TopicRawObjectsDLQ),
			AckDeadlineSeconds: 60,
		},
	}
	for _, s := range subs {
		if _, err := client.SubscriptionAdminClient.CreateSubscription(ctx, s); err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("testenv: create subscription %s: %w", s.Name, err)
		}
	}
	return nil
}

func (e *Env) provisionBigQuery(ctx context.Context, p config.Platform) error {
	client, err := gcp.NewBigQuery(ctx, p)
	if err != nil {
		return fmt.Errorf("testenv: provision bigquery: %w", err)
	}
	defer client.Close()
	// Look before creating: the emulator answers an existing dataset with a
	// 500, not BigQuery's 409.
	ds := client.Dataset(names.Dataset)
	if _, err := ds.Metadata(ctx); isNotFound(err) {
		if err := ds.Create(ctx, &bigquery.DatasetMetadata{Location: p.BigQueryLocation}); err != nil && !isConflict(err) {
			return fmt.Errorf("testenv: create dataset %s: %w", names.Dataset, err)
		}
	} else if err != nil {
		return fmt.Errorf("testenv: dataset %s: %w", names.Dataset, err)
	}
	table := ds.Table(names.ResultsTable)
	if _, err := table.Metadata(ctx); isNotFound(err) {
		if err := table.Create(ctx, schema.BigQueryTable()); err != nil && !isConflict(err) {
			return fmt.Errorf("testenv: create table %s.%s: %w", names.Dataset, names.ResultsTable, err)
		}
	} else if err != nil {
		return fmt.Errorf("testenv: table %s.%s: %w", names.Dataset, names.ResultsTable, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && gerr.Code == http.StatusNotFound
}

func isConflict(err error) bool {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code == http.StatusConflict
	}
	return false
}

var platformSeq atomic.Int64

// NewPlatform provisions a fresh platform of its own, isolated from every
// other: its own project id (hence its own topics, subscriptions, dataset
// and Firestore data) and bucket prefix, both derived from name.
func (e *Env) NewPlatform(ctx context.Context, name string) (config.Platform, error) {
	id := fmt.Sprintf("t%d-%s", platformSeq.Add(1), sanitize(name))
	if len(id) > 30 {
		id = id[:30]
	}
	id = strings.TrimRight(id, "-")
	for len(id) < 6 {
		id += "x"
	}
	p := e.Platform
	p.Project, p.Prefix = id, id
	if err := e.Provision(ctx, p); err != nil {
		return config.Platform{}, err
	}
	return p, nil
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return b.String()
}
