package retrytest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, testenv.Options{PubSubRetryBackoff: true}))
}

// These tests measure real delays: a backoff is a wall-clock promise. The
// lower bounds are exact (pstest starts the backoff when the nack reaches
// it, after the test noted the time); the upper bounds leave slack for the
// client's nack batching (0.1 s), pstest's delivery loop and a loaded
// machine.
const slack = 2 * time.Second

// policy is the retry policy of the tests: 1 s, 2 s, 4 s, 4 s, ...
var policy = &pubsubpb.RetryPolicy{MinimumBackoff: durationpb.New(time.Second), MaximumBackoff: durationpb.New(4 * time.Second)}

var projects atomic.Int64

// newClient returns a Pub/Sub client on the Env's public address, and a
// project of the test's own (also under -count): the tests need Pub/Sub
// only, so the rest of a platform is not provisioned.
func newClient(t *testing.T) (*pubsub.Client, string) {
	t.Helper()
	p := env.Platform
	p.Project = fmt.Sprintf("retry%d-%s", projects.Add(1), strings.ToLower(strings.TrimPrefix(t.Name(), "Test")))
	c, err := gcp.NewPubSub(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p.Project
}

// newSubscription creates topic and subscription sub (topic and
// subscription share the name) and publishes a message with each of data
// to the topic, "sample" if none is given.
func newSubscription(ctx context.Context, t *testing.T, c *pubsub.Client, project string, sub *pubsubpb.Subscription, data ...string) {
	t.Helper()
	name := sub.Name
	sub.Name = "projects/" + project + "/subscriptions/" + name
	sub.Topic = "projects/" + project + "/topics/" + name
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: sub.Topic}); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil {
		t.Fatalf("create subscription %s: %v", name, err)
	}
	pub := c.Publisher(name)
	defer pub.Stop()
	if len(data) == 0 {
		data = []string{"sample"}
	}
	for _, d := range data {
		if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(d)}).Get(ctx); err != nil {
			t.Fatalf("publish to %s: %v", name, err)
		}
	}
}

// delivery is one delivery of the test message, nacked at once.
type delivery struct {
	at      time.Time // received, just before the nack
	attempt int       // delivery_attempt; 0 without a dead-letter policy
}

// receive receives sub with the official client's streaming pull (which
// nacks with the unary ModifyAckDeadline) and nacks every delivery, until
// stop says so or ctx ends.
func receive(ctx context.Context, c *pubsub.Client, sub string, stop func([]delivery) bool) ([]delivery, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var got []delivery
	err := c.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		defer mu.Unlock()
		d := delivery{at: time.Now()}
		if m.DeliveryAttempt != nil {
			d.attempt = *m.DeliveryAttempt
		}
		m.Nack()
		got = append(got, d)
		if stop(got) {
			cancel()
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("receive %s: %w", sub, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got, nil
}

// checkGap fails the test unless the redelivery came after backoff, and not
// much later.
func checkGap(t *testing.T, what string, nacked, redelivered time.Time, backoff time.Duration) {
	t.Helper()
	gap := redelivered.Sub(nacked)
	if gap < backoff || gap >= backoff+slack {
		t.Errorf("%s came %v after the nack, want %v (up to %v more)", what, gap.Round(time.Millisecond), backoff, slack)
	}
}

// TestDeadLetterAfterTheBackoffs: with dead-lettering after 3 delivery
// attempts, a message nacked every time reaches the dead-letter topic only
// after backoffs of 1, 2 and 4 s (the nack of the last attempt waits too:
// pstest dead-letters a message when it would deliver it again).
func TestDeadLetterAfterTheBackoffs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, project := newClient(t)
	dlq := "projects/" + project + "/topics/dead"
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: dlq}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: "projects/" + project + "/subscriptions/dead-hold", Topic: dlq, AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
	newSubscription(ctx, t, c, project, &pubsubpb.Subscription{
		Name: "poison", AckDeadlineSeconds: 10, RetryPolicy: policy,
		DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{DeadLetterTopic: dlq, MaxDeliveryAttempts: 3},
	})

	// Receive both subscriptions until the dead letter arrives.
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	var got []delivery
	var gotErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, gotErr = receive(rctx, c, "poison", func([]delivery) bool { return false })
	}()
	var deadAt time.Time
	var once sync.Once
	err := c.Subscriber("dead-hold").Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		once.Do(func() { deadAt = time.Now() })
		rcancel()
	})
	<-done
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("receive dead letters: %v", err)
	}
	if gotErr != nil {
		t.Fatal(gotErr)
	}
	if deadAt.IsZero() {
		t.Fatal("no dead letter")
	}
	var attempts []int
	for _, d := range got {
		attempts = append(attempts, d.attempt)
	}
	if fmt.Sprint(attempts) != "[1 2 3]" {
		t.Fatalf("delivery attempts = %v, want [1 2 3]", attempts)
	}
	checkGap(t, "the second delivery", got[0].at, got[1].at, time.Second)
	checkGap(t, "the third delivery", got[1].at, got[2].at, 2*time.Second)
	checkGap(t, "the dead letter", got[2].at, deadAt, 4*time.Second)
}

// TestNackWaitsForTheBackoff: a nacked message of a subscription with a
// retry policy of 1 s to 4 s comes back after 1 s, and after 2 s when
// nacked again.
func TestNackWaitsForTheBackoff(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, project := newClient(t)
	newSubscription(ctx, t, c, project, &pubsubpb.Subscription{Name: "backoff", AckDeadlineSeconds: 10, RetryPolicy: policy})

	got, err := receive(ctx, c, "backoff", func(d []delivery) bool { return len(d) == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d deliveries, want 3", len(got))
	}
	checkGap(t, "the second delivery", got[0].at, got[1].at, time.Second)
	checkGap(t, "the third delivery", got[1].at, got[2].at, 2*time.Second)
}

// TestNackWithoutRetryPolicyIsAtOnce: a subscription without a retry policy
// keeps immediate redelivery.
func TestNackWithoutRetryPolicyIsAtOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, project := newClient(t)
	newSubscription(ctx, t, c, project, &pubsubpb.Subscription{Name: "immediate", AckDeadlineSeconds: 10})

	got, err := receive(ctx, c, "immediate", func(d []delivery) bool { return len(d) == 3 })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d deliveries, want 3", len(got))
	}
	for i := 1; i < len(got); i++ {
		// The shortest backoff a policy can give is 1 s.
		if gap := got[i].at.Sub(got[i-1].at); gap >= time.Second {
			t.Errorf("delivery %d came %v after the nack, want at once", i+1, gap.Round(time.Millisecond))
		}
	}
}

// TestNackOnStreamingPullWaitsForTheBackoff: a nack carried by a
// StreamingPull request (modify_deadline_seconds 0, as other client
// libraries send it) waits for the backoff too, and an ack in the same
// stream still acknowledges.
func TestNackOnStreamingPullWaitsForTheBackoff(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, project := newClient(t)
	newSubscription(ctx, t, c, project, &pubsubpb.Subscription{Name: "stream", AckDeadlineSeconds: 10, RetryPolicy: policy})

	stream, err := c.SubscriptionAdminClient.StreamingPull(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sub := "projects/" + project + "/subscriptions/stream"
	if err := stream.Send(&pubsubpb.StreamingPullRequest{Subscription: sub, StreamAckDeadlineSeconds: 10}); err != nil {
		t.Fatalf("open streaming pull: %v", err)
	}
	next := func() *pubsubpb.ReceivedMessage {
		t.Helper()
		for {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("streaming pull: %v", err)
			}
			if len(resp.ReceivedMessages) > 0 {
				return resp.ReceivedMessages[0]
			}
		}
	}
	first := next()
	nacked := time.Now()
	if err := stream.Send(&pubsubpb.StreamingPullRequest{ModifyDeadlineAckIds: []string{first.AckId}, ModifyDeadlineSeconds: []int32{0}}); err != nil {
		t.Fatalf("nack: %v", err)
	}
	second := next()
	checkGap(t, "the second delivery", nacked, time.Now(), time.Second)
	if second.Message.GetMessageId() != first.Message.GetMessageId() {
		t.Fatalf("redelivered message %s, want %s", second.Message.GetMessageId(), first.Message.GetMessageId())
	}
	// A deadline that is not 0 is an extension, kept as it is: 3 s, not
	// the 2 s backoff of a second nack.
	extended := time.Now()
	if err := stream.Send(&pubsubpb.StreamingPullRequest{ModifyDeadlineAckIds: []string{second.AckId}, ModifyDeadlineSeconds: []int32{3}}); err != nil {
		t.Fatalf("extend the deadline: %v", err)
	}
	third := next()
	checkGap(t, "the delivery after the deadline", extended, time.Now(), 3*time.Second)
	if err := stream.Send(&pubsubpb.StreamingPullRequest{AckIds: []string{third.AckId}}); err != nil {
		t.Fatalf("ack: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// TestUnaryNacksAndLateDeadlineChanges: with unary Pull and
// ModifyAckDeadline, one nack of two messages gives each the backoff of its
// own attempt, and a deadline change that comes after the nack of the same
// delivery (the Go client's receipt races its nack) does not take the
// message back for a whole ack deadline.
func TestUnaryNacksAndLateDeadlineChanges(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	c, project := newClient(t)
	newSubscription(ctx, t, c, project, &pubsubpb.Subscription{Name: "unary", AckDeadlineSeconds: 10, RetryPolicy: policy}, "a", "b")
	sub := "projects/" + project + "/subscriptions/unary"

	// pull pulls until each of want was delivered, and returns when each
	// came and its ack id.
	pull := func(want ...string) (map[string]time.Time, map[string]string) {
		t.Helper()
		at, ids := map[string]time.Time{}, map[string]string{}
		for len(at) < len(want) {
			resp, err := c.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 10})
			if err != nil {
				t.Fatalf("pull %v: got %v so far: %v", want, at, err)
			}
			for _, m := range resp.ReceivedMessages {
				at[string(m.Message.Data)], ids[string(m.Message.Data)] = time.Now(), m.AckId
			}
		}
		for _, w := range want {
			if _, ok := at[w]; !ok {
				t.Fatalf("pulled %v, want %v", at, want)
			}
		}
		return at, ids
	}
	modify := func(secs int32, ackIDs ...string) {
		t.Helper()
		if err := c.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: sub, AckIds: ackIDs, AckDeadlineSeconds: secs}); err != nil {
			t.Fatalf("modify the ack deadline of %v to %d s: %v", ackIDs, secs, err)
		}
	}

	_, ids := pull("a", "b")
	nacked := time.Now()
	modify(0, ids["a"])
	at, _ := pull("a")
	checkGap(t, "a's second delivery", nacked, at["a"], time.Second)

	// a is on its second delivery, b still on its first.
	nacked = time.Now()
	modify(0, ids["a"], ids["b"])
	modify(10, ids["a"], ids["b"])
	at, ids = pull("a", "b")
	checkGap(t, "b's second delivery", nacked, at["b"], time.Second)
	checkGap(t, "a's third delivery", nacked, at["a"], 2*time.Second)
	if err := c.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{Subscription: sub, AckIds: []string{ids["a"], ids["b"]}}); err != nil {
		t.Fatalf("ack: %v", err)
	}
}
