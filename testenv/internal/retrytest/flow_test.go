package retrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// TestFlowControl: a subscriber that may hold one message at a time
// (MaxOutstandingMessages 1) and is stuck on it holds at most one more;
// another subscriber gets the rest of the backlog, each message on its
// first delivery attempt. pstest alone pushes the whole backlog into the
// first stream that reads, where it waits behind the stuck message and,
// were that subscriber killed, would lose a delivery attempt.
//
// The stuck subscriber stays stuck for longer than its client's keep-alive
// ping period and server timeout (30 + 15 s) and than its stream's ack
// deadline (10 s): the held message must neither go elsewhere nor cost the
// stream, and the emulator must keep serving meanwhile (a message published
// then is delivered).
func TestFlowControl(t *testing.T) {
	t.Parallel()
	const (
		n    = 20
		hold = 47 * time.Second
	)
	ctx, cancel := context.WithTimeout(t.Context(), hold+30*time.Second)
	defer cancel()
	c, project := newClient(t)
	data := make([]string, n)
	for i := range data {
		data[i] = fmt.Sprintf("m%02d", i)
	}
	dlq := "projects/" + project + "/topics/dead"
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: dlq}); err != nil {
		t.Fatal(err)
	}
	newSubscription(ctx, t, c, project, &pubsubpb.Subscription{
		Name: "flow", AckDeadlineSeconds: 10,
		DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{DeadLetterTopic: dlq, MaxDeliveryAttempts: 5},
	}, data...)
	sub := "projects/" + project + "/subscriptions/flow"

	// The stuck subscriber: holds its first message until release.
	stuck, _ := newClient(t)
	release := make(chan struct{})
	var stuckMu sync.Mutex
	var stuckGot []string
	first := make(chan struct{})
	stuckMore := make(chan struct{}, 1) // the stuck subscriber got another message
	stuckCtx, stopStuck := context.WithCancel(ctx)
	defer stopStuck()
	stuckDone := make(chan error, 1)
	go func() {
		s := stuck.Subscriber(sub)
		s.ReceiveSettings.MaxOutstandingMessages = 1
		s.ReceiveSettings.MaxDurationPerAckExtension = 10 * time.Second // the stream's ack deadline
		var once sync.Once
		stuckDone <- s.Receive(stuckCtx, func(_ context.Context, m *pubsub.Message) {
			stuckMu.Lock()
			stuckGot = append(stuckGot, string(m.Data))
			stuckMu.Unlock()
			select {
			case stuckMore <- struct{}{}:
			default:
			}
			once.Do(func() {
				close(first)
				<-release
			})
			m.Ack()
		})
	}()
	select {
	case <-first:
	case <-ctx.Done():
		t.Fatal("the stuck subscriber got no message")
	}
	stuckSince := time.Now()

	// The other subscriber acks everything it gets until the hold ends; a
	// message published halfway must reach it too.
	other, _ := newClient(t)
	var mu sync.Mutex
	got := map[string]int{} // data -> delivery attempt
	otherCtx, stopOther := context.WithDeadline(ctx, stuckSince.Add(hold))
	defer stopOther()
	go func() {
		select {
		case <-time.After(hold / 2):
		case <-otherCtx.Done():
			return
		}
		pub := c.Publisher("flow")
		defer pub.Stop()
		if _, err := pub.Publish(otherCtx, &pubsub.Message{Data: []byte("late")}).Get(otherCtx); err != nil {
			t.Errorf("publish while a stream is held: %v", err)
		}
	}()
	err := other.Subscriber(sub).Receive(otherCtx, func(_ context.Context, m *pubsub.Message) {
		mu.Lock()
		defer mu.Unlock()
		if m.DeliveryAttempt != nil {
			got[string(m.Data)] = *m.DeliveryAttempt
		}
		m.Ack()
	})
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != n-2+1 {
		t.Errorf("the other subscriber got %d messages while the first was stuck for %v, want %d: all but the stuck one's two, and the late one", len(got), hold, n-2+1)
	}
	if _, ok := got["late"]; !ok {
		t.Error("the message published while a stream was held never came")
	}
	for d, attempt := range got {
		if attempt != 1 {
			t.Errorf("%s arrived on delivery attempt %d, want 1", d, attempt)
		}
	}
	mu.Unlock()

	// Released, the stuck subscriber gets what it still holds, and no more.
	close(release)
	deadline := time.After(10 * time.Second)
	for done := false; !done; {
		stuckMu.Lock()
		done = len(stuckGot)+len(got) >= n+1
		stuckMu.Unlock()
		if !done {
			select {
			case <-stuckMore:
			case <-deadline:
				done = true
			}
		}
	}
	stopStuck()
	if err := <-stuckDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	stuckMu.Lock()
	defer stuckMu.Unlock()
	if len(stuckGot) != 2 {
		t.Errorf("the stuck subscriber got %d messages, want 2 (its one and one held for it)", len(stuckGot))
	}
	seen := map[string]bool{}
	for _, d := range stuckGot {
		seen[d] = true
	}
	for d := range got {
		seen[d] = true
	}
	if len(seen) != n+1 {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), n+1)
	}
}
