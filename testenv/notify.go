package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
)

// Object event types, as GCS names them in the eventType attribute.
const (
	EventFinalize = "OBJECT_FINALIZE"
	EventDelete   = "OBJECT_DELETE"
	EventMetadata = "OBJECT_METADATA_UPDATE"
	EventArchive  = "OBJECT_ARCHIVE"
)

// Notification is a bucket's notification configuration: which object events
// are published to which topic.
type Notification struct {
	Bucket string
	// Topic is the full topic name, projects/<project>/topics/<topic>.
	Topic string
	// EventTypes limits the events; empty means all of them.
	EventTypes []string
	// ObjectNamePrefix limits the objects; empty means all of them.
	ObjectNamePrefix string
}

func (n Notification) matches(eventType, object string) bool {
	if n.ObjectNamePrefix != "" && !strings.HasPrefix(object, n.ObjectNamePrefix) {
		return false
	}
	if len(n.EventTypes) == 0 {
		return true
	}
	for _, t := range n.EventTypes {
		if t == eventType {
			return true
		}
	}
	return false
}

// router receives every object event of the storage emulator and publishes
// it, unchanged but for the notificationConfig attribute, to the topic of
// each matching notification configuration. It acks an event only once every
// publish succeeded, so an event is delivered at least once, as GCS does.
type router struct {
	client *pubsub.Client
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan error

	mu     sync.RWMutex
	routes map[string][]Notification // by bucket
	pubs   map[string]*pubsub.Publisher
}

const routerSubscription = "gcs-events-router"

func startRouter(ctx context.Context, p config.Platform, topic string, log *slog.Logger) (*router, error) {
	client, err := gcp.NewPubSub(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("testenv: notification router: %w", err)
	}
	sub := "projects/" + p.Project + "/subscriptions/" + routerSubscription
	_, err = client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:               sub,
		Topic:              "projects/" + p.Project + "/topics/" + topic,
		AckDeadlineSeconds: 30,
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		client.Close()
		return nil, fmt.Errorf("testenv: notification router subscription: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &router{
		client: client,
		log:    log.With("component", "gcs-notifications"),
		cancel: cancel,
		done:   make(chan error, 1),
		routes: map[string][]Notification{},
		pubs:   map[string]*pubsub.Publisher{},
	}
	go func() {
		r.done <- client.Subscriber(sub).Receive(rctx, r.handle)
	}()
	return r, nil
}

func (r *router) add(n Notification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, have := range r.routes[n.Bucket] {
		if have.Topic == n.Topic && have.ObjectNamePrefix == n.ObjectNamePrefix {
			return
		}
	}
	r.routes[n.Bucket] = append(r.routes[n.Bucket], n)
	if r.pubs[n.Topic] == nil {
		r.pubs[n.Topic] = r.client.Publisher(n.Topic)
	}
}

func (r *router) handle(ctx context.Context, m *pubsub.Message) {
	bucket, object, eventType := m.Attributes["bucketId"], m.Attributes["objectId"], m.Attributes["eventType"]
	r.mu.RLock()
	var targets []Notification
	for _, n := range r.routes[bucket] {
		if n.matches(eventType, object) {
			targets = append(targets, n)
		}
	}
	pubs := make([]*pubsub.Publisher, len(targets))
	for i, n := range targets {
		pubs[i] = r.pubs[n.Topic]
	}
	r.mu.RUnlock()

	for i, n := range targets {
		attrs := make(map[string]string, len(m.Attributes)+1)
		for k, v := range m.Attributes {
			attrs[k] = v
		}
		attrs["notificationConfig"] = "projects/_/buckets/" + bucket + "/notificationConfigs/" + notificationID(n)
		if _, err := pubs[i].Publish(ctx, &pubsub.Message{Data: m.Data, Attributes: attrs}).Get(ctx); err != nil {
			r.log.Warn("publish object event", "bucket", bucket, "object", object, "topic", n.Topic, "err", err)
			m.Nack()
			return
		}
	}
	m.Ack()
}

func notificationID(n Notification) string {
	if n.ObjectNamePrefix == "" {
		return "1"
	}
	return "prefix-" + n.ObjectNamePrefix
}

func (r *router) close() error {
	r.cancel()
	err := <-r.done
	r.mu.Lock()
	for _, p := range r.pubs {
		p.Stop()
	}
	r.mu.Unlock()
	if cerr := r.client.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("testenv: notification router: %w", err)
	}
	return nil
}
