package testenv

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Bounds of a subscription's retry policy when the policy leaves them unset,
// as on GCP, and the longest ack deadline Pub/Sub accepts.
const (
	defaultMinBackoff = 10 * time.Second
	defaultMaxBackoff = 600 * time.Second
	maxAckDeadline    = 600 * time.Second
)

// nackBackoff makes the public Pub/Sub port honour each subscription's
// retry policy (Options.PubSubRetryBackoff), which pstest accepts but
// ignores: it redelivers a nacked message at once. A nack is a deadline
// modification to 0 s, by the unary ModifyAckDeadline (what the Go client
// sends) or inside a StreamingPull request. For a subscription with a
// RetryPolicy, nackBackoff turns it into a deadline of the backoff of the
// message's delivery attempt (nackDeadlineSeconds), so pstest hands the
// message out again only when that deadline passes, and counts the next
// delivery as the next attempt, as GCP does.
//
// A nack is final for the delivery it names: a deadline change for the same
// message is dropped until the front hands the message out again. The Go
// client sends the receipt deadline change of a delivery and its nack in
// separate, concurrent RPCs, and pstest's ack ids are its message ids: a
// receipt that came second would hold the nacked message for a whole ack
// deadline. Everything else reaches pstest unchanged.
//
// The delivery attempt comes from pstest's own count (Server.Message), so it
// is right across streams, pulls and outages of the front. That count is
// pstest's per message, not per subscription: on a topic with several
// subscriptions, or on a subscription that receives dead letters, it is
// higher than GCP's, as is the delivery_attempt pstest reports.
type nackBackoff struct {
	ps  *pstest.Server
	log *slog.Logger
	now func() time.Time

	// mu guards nacked and swept, and serializes Server.Message, which
	// writes the exported counters of the message it returns.
	mu     sync.Mutex
	nacked map[ackKey]time.Time // nacked messages not handed out since: end of their backoff
	swept  time.Time
}

// ackKey names a message of a subscription.
type ackKey struct{ subscription, ackID string }

// nackGrace is how long after its backoff a nacked message that was not
// handed out again is remembered (one that left the subscription, by a dead
// letter, an ack or pstest's retention, is never handed out again).
const nackGrace = time.Minute

func newNackBackoff(ps *pstest.Server, log *slog.Logger) *nackBackoff {
	return &nackBackoff{ps: ps, log: log, now: time.Now, nacked: map[ackKey]time.Time{}}
}

// serverOptions returns the interceptors to install on the front's server.
func (b *nackBackoff) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(b.unary), grpc.ChainStreamInterceptor(b.stream)}
}

// unary rewrites a ModifyAckDeadline request. The request has one deadline
// for every ack id, and each message has its own backoff, so a nack of
// several messages becomes one request per backoff, in the order of the ack
// ids; a request left with no ack id is answered without reaching pstest.
// It also notes the messages a Pull hands out.
func (b *nackBackoff) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if r, ok := req.(*pubsubpb.PullRequest); ok && info.FullMethod == pubsubpb.Subscriber_Pull_FullMethodName {
		resp, err := handler(ctx, req)
		if pr, ok := resp.(*pubsubpb.PullResponse); ok && err == nil {
			b.delivered(r.Subscription, pr.ReceivedMessages)
		}
		return resp, err
	}
	r, ok := req.(*pubsubpb.ModifyAckDeadlineRequest)
	if !ok || info.FullMethod != pubsubpb.Subscriber_ModifyAckDeadline_FullMethodName || len(r.AckIds) == 0 {
		return handler(ctx, req)
	}
	policy := sync.OnceValue(func() *pubsubpb.RetryPolicy { return b.policy(ctx, r.Subscription) })
	var order []int32
	byDeadline := map[int32][]string{}
	for _, id := range r.AckIds {
		d, keep := b.modify(policy, r.Subscription, id, r.AckDeadlineSeconds)
		if !keep {
			continue
		}
		if _, seen := byDeadline[d]; !seen {
			order = append(order, d)
		}
		byDeadline[d] = append(byDeadline[d], id)
	}
	if len(order) == 1 && len(byDeadline[order[0]]) == len(r.AckIds) && order[0] == r.AckDeadlineSeconds {
		return handler(ctx, req) // nothing changed
	}
	resp := any(&emptypb.Empty{})
	for _, d := range order {
		var err error
		resp, err = handler(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: r.Subscription, AckIds: byDeadline[d], AckDeadlineSeconds: d})
		if err != nil {
			return nil, err
		}
	}
	return resp, nil
}

// stream rewrites the deadline changes of a StreamingPull's requests.
func (b *nackBackoff) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != pubsubpb.Subscriber_StreamingPull_FullMethodName {
		return handler(srv, ss)
	}
	return handler(srv, &nackBackoffStream{ServerStream: ss, b: b})
}

// nackBackoffStream rewrites the deadline changes of one StreamingPull in
// place, so the order of acks and deadline changes within a request is
// kept, and notes the messages it hands out. pstest reads the requests of a
// stream one after the other, and starts sending after the first, so its
// fields need no lock.
type nackBackoffStream struct {
	grpc.ServerStream
	b      *nackBackoff
	sub    string                       // from the stream's first request
	policy func() *pubsubpb.RetryPolicy // looked up on the stream's first nack
}

func (s *nackBackoffStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	req, ok := m.(*pubsubpb.StreamingPullRequest)
	if !ok {
		return nil
	}
	if s.policy == nil {
		s.sub = req.Subscription
		s.policy = sync.OnceValue(func() *pubsubpb.RetryPolicy { return s.b.policy(s.Context(), s.sub) })
	}
	if len(req.ModifyDeadlineAckIds) != len(req.ModifyDeadlineSeconds) {
		return nil // invalid; left to pstest
	}
	ids, secs := req.ModifyDeadlineAckIds[:0], req.ModifyDeadlineSeconds[:0]
	for i, id := range req.ModifyDeadlineAckIds {
		if d, keep := s.b.modify(s.policy, s.sub, id, req.ModifyDeadlineSeconds[i]); keep {
			ids, secs = append(ids, id), append(secs, d)
		}
	}
	req.ModifyDeadlineAckIds, req.ModifyDeadlineSeconds = ids, secs
	return nil
}

func (s *nackBackoffStream) SendMsg(m any) error {
	if resp, ok := m.(*pubsubpb.StreamingPullResponse); ok {
		s.b.delivered(s.sub, resp.ReceivedMessages)
	}
	return s.ServerStream.SendMsg(m)
}

// delivered notes that msgs of a subscription are out for delivery again:
// their deadline changes count from now on.
func (b *nackBackoff) delivered(subscription string, msgs []*pubsubpb.ReceivedMessage) {
	if len(msgs) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.nacked) == 0 {
		return
	}
	for _, m := range msgs {
		delete(b.nacked, ackKey{subscription: subscription, ackID: m.AckId})
	}
}

// modify returns the deadline, in seconds, to pass on for a change of the
// deadline of the message with ackID to secs, or false to drop the change.
func (b *nackBackoff) modify(policy func() *pubsubpb.RetryPolicy, subscription, ackID string, secs int32) (int32, bool) {
	k := ackKey{subscription: subscription, ackID: ackID}
	if secs != 0 {
		b.mu.Lock()
		defer b.mu.Unlock()
		_, nacked := b.nacked[k]
		return secs, !nacked
	}
	p := policy()
	b.mu.Lock()
	defer b.mu.Unlock()
	d := int32(0)
	if p != nil {
		attempt := b.attempt(ackID)
		d = nackDeadlineSeconds(p, attempt)
		b.log.Debug("nack delayed by the retry policy", "subscription", subscription, "attempt", attempt, "backoff_seconds", d)
	}
	now := b.now()
	b.sweep(now)
	b.nacked[k] = now.Add(time.Duration(d) * time.Second)
	return d, true
}

// sweep forgets the nacked deliveries whose backoff ended more than
// nackGrace ago, at most once per nackGrace. b.mu is held.
func (b *nackBackoff) sweep(now time.Time) {
	if now.Sub(b.swept) < nackGrace {
		return
	}
	b.swept = now
	for k, until := range b.nacked {
		if now.Sub(until) > nackGrace {
			delete(b.nacked, k)
		}
	}
}

// policy returns the retry policy of a subscription, nil if it has none or
// does not exist (pstest then answers the request with NOT_FOUND). It
// reads pstest's own copy of the subscription, without pstest's lock: a
// policy changed by UpdateSubscription applies from the next request or
// stream (an update while nacks arrive is a data race in pstest's state).
func (b *nackBackoff) policy(ctx context.Context, subscription string) *pubsubpb.RetryPolicy {
	sub, err := b.ps.GServer.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: subscription})
	if err != nil {
		return nil
	}
	return sub.GetRetryPolicy()
}

// attempt returns the delivery attempt of the message with ackID: the
// number of times pstest handed it out (its ack ids are its message ids),
// 1 if pstest does not know it. b.mu is held.
func (b *nackBackoff) attempt(ackID string) int {
	m := b.ps.Message(ackID)
	if m == nil {
		return 1
	}
	return max(m.Deliveries, 1)
}

// nackDeadlineSeconds returns the ack deadline that stands for a nack of a
// message's attempt-th delivery under policy p: the backoff
// min(maximum, minimum·2^(attempt−1)), rounded up to whole seconds (an ack
// deadline is in seconds) and at most 600 s, the longest ack deadline Pub/Sub
// accepts. Unset bounds are GCP's defaults, 10 s and 600 s. GCP documents
// only "exponential between minimum and maximum"; this doubling has no
// jitter. 0 means redeliver at once (a minimum backoff of 0).
func nackDeadlineSeconds(p *pubsubpb.RetryPolicy, attempt int) int32 {
	lo, hi := defaultMinBackoff, defaultMaxBackoff
	if p.GetMinimumBackoff() != nil {
		lo = p.GetMinimumBackoff().AsDuration()
	}
	if p.GetMaximumBackoff() != nil {
		hi = p.GetMaximumBackoff().AsDuration()
	}
	hi = max(min(hi, maxAckDeadline), 0)
	d := max(min(lo, hi), 0)
	for i := 1; i < attempt && d > 0 && d < hi; i++ {
		d *= 2 // d < hi <= 600 s: no overflow
	}
	d = min(d, hi)
	return int32((d + time.Second - 1) / time.Second)
}
