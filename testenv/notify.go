package testenv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
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
//
// The events reach it through the Pub/Sub emulator's internal address, which
// Env.Stop never takes down: fake-gcs-server publishes each event once, in
// the background, and drops it when that publish fails (after its client's
// 60 s publish timeout), so an event raised while Pub/Sub is down would
// otherwise be lost. The router republishes through the public address, the
// one clients use; while Pub/Sub is down its publishes fail, the event is
// nacked and redelivered to it, and it is published once Pub/Sub is back.
type router struct {
	events *pubsub.Client // internal address: the gcs-events subscription
	client *pubsub.Client // public address: the notification topics
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan error
	// failures counts failed publishes (each one nacks its event).
	failures atomic.Int64

	mu     sync.RWMutex
	routes map[string][]Notification // by bucket
	pubs   map[string]*pubsub.Publisher
}

const routerSubscription = "gcs-events-router"

// routerPublishTimeout bounds one attempt to republish an event (the
// emulator answers in milliseconds); then the event is nacked and
// redelivered to the router, which tries again. It also bounds how long the
// router may sit in its client's retry backoff after Pub/Sub is back.
const routerPublishTimeout = 2 * time.Second

func startRouter(ctx context.Context, p config.Platform, eventsAddr, topic string, log *slog.Logger) (*router, error) {
	internal := p
	internal.Emulators.PubSub = eventsAddr
	events, err := gcp.NewPubSub(ctx, internal)
	if err != nil {
		return nil, fmt.Errorf("testenv: notification router: %w", err)
	}
	// After an outage, reconnect within a second or two, not on gRPC's
	// default backoff (up to 2 minutes).
	client, err := gcp.NewPubSub(ctx, p, option.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 5 * time.Second,
	})))
	if err != nil {
		events.Close()
		return nil, fmt.Errorf("testenv: notification router: %w", err)
	}
	sub := "projects/" + p.Project + "/subscriptions/" + routerSubscription
	_, err = events.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:               sub,
		Topic:              "projects/" + p.Project + "/topics/" + topic,
		AckDeadlineSeconds: 30,
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		events.Close()
		client.Close()
		return nil, fmt.Errorf("testenv: notification router subscription: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := &router{
		events: events,
		client: client,
		log:    log.With("component", "gcs-notifications"),
		cancel: cancel,
		done:   make(chan error, 1),
		routes: map[string][]Notification{},
		pubs:   map[string]*pubsub.Publisher{},
	}
	go func() {
		r.done <- events.Subscriber(sub).Receive(rctx, r.handle)
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
		pub := r.client.Publisher(n.Topic)
		pub.PublishSettings.Timeout = routerPublishTimeout
		r.pubs[n.Topic] = pub
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
			r.failures.Add(1)
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
	if cerr := r.events.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("testenv: notification router: %w", err)
	}
	return nil
}
