package testenv

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc"
)

// flowControl makes the public Pub/Sub port honour the flow control a
// StreamingPull asks for, as GCP does: a stream whose first request sets
// max_outstanding_messages is sent no more messages while that many of its
// messages are outstanding (neither acked, nacked nor past their ack
// deadline). pstest ignores the setting and pushes every available message
// into any stream that reads, so a client holds the whole backlog in its
// buffers and leases it: a client that dies (SIGKILL, a lost VM) then costs
// every message of the backlog a delivery attempt, and five such deaths
// dead-letter messages no worker ever began. On GCP a killed worker costs
// a delivery attempt only to the messages it was given.
//
// pstest hands a stream a message when the stream's send loop is free and
// counts the delivery then, so flowControl holds the send (SendMsg) until
// the stream has room: the held message is the only one the stream has
// beyond its limit, and while it is held pstest gives the others to other
// streams. The held message stays leased to the stream: its deadline in
// pstest is renewed while it waits, so it is not delivered twice. (GCP
// would give it to the first stream with room; here it waits for its own.)
//
// While a send waits, the stream cannot answer the client's keep-alive
// pings through pstest, which answers them from inside its global lock:
// flowControl answers pings of a flow-controlled stream itself.
//
// max_outstanding_bytes is not honoured: the platform's messages are GCS
// notifications of about a kilobyte, far below any byte limit.
type flowControl struct {
	ps *pstest.Server

	mu     sync.Mutex
	leases map[ackKey]*flowLease
}

// flowLease is a message outstanding on a flow-controlled stream.
type flowLease struct {
	st    *flowStream
	until time.Time
}

func newFlowControl(ps *pstest.Server) *flowControl {
	return &flowControl{ps: ps, leases: map[ackKey]*flowLease{}}
}

// serverOptions returns the interceptors to install on the front's server,
// ahead of any that rewrite requests: flowControl must see a client's nack
// as the client sent it.
func (f *flowControl) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(f.unary), grpc.ChainStreamInterceptor(f.stream)}
}

// unary notes the acks, nacks and deadline changes sent by the unary RPCs
// (the Go client sends all of them that way).
func (f *flowControl) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	switch r := req.(type) {
	case *pubsubpb.AcknowledgeRequest:
		f.release(r.Subscription, r.AckIds)
	case *pubsubpb.ModifyAckDeadlineRequest:
		f.modify(r.Subscription, r.AckIds, r.AckDeadlineSeconds)
	}
	return handler(ctx, req)
}

func (f *flowControl) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if info.FullMethod != pubsubpb.Subscriber_StreamingPull_FullMethodName {
		return handler(srv, ss)
	}
	st := &flowStream{ServerStream: ss, f: f, room: make(chan struct{}, 1)}
	defer f.forget(st)
	return handler(srv, st)
}

// release ends the leases of ackIDs: acked or nacked.
func (f *flowControl) release(subscription string, ackIDs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ackIDs {
		f.drop(ackKey{subscription: subscription, ackID: id})
	}
}

// modify applies a deadline change: 0 s is a nack and ends the lease.
func (f *flowControl) modify(subscription string, ackIDs []string, secs int32) {
	if secs <= 0 {
		f.release(subscription, ackIDs)
		return
	}
	until := time.Now().Add(time.Duration(secs) * time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range ackIDs {
		if l, ok := f.leases[ackKey{subscription: subscription, ackID: id}]; ok {
			l.until = until
		}
	}
}

// drop ends the lease of k, if any, and tells its stream. f.mu is held.
func (f *flowControl) drop(k ackKey) {
	l, ok := f.leases[k]
	if !ok {
		return
	}
	delete(f.leases, k)
	l.st.outstanding--
	l.st.signal()
}

// lease notes msgs as outstanding on st until its ack deadline. A message
// leased to another stream before (its deadline passed there and pstest
// delivered it again) now counts for st only.
func (f *flowControl) lease(st *flowStream, msgs []*pubsubpb.ReceivedMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	until := time.Now().Add(st.deadline())
	for _, m := range msgs {
		k := ackKey{subscription: st.sub, ackID: m.AckId}
		f.drop(k)
		f.leases[k] = &flowLease{st: st, until: until}
		st.outstanding++
	}
}

// room reports whether st may be sent another message, ending the leases
// of st whose deadline passed, and otherwise when its next lease ends.
func (f *flowControl) room(st *flowStream, now time.Time) (bool, time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var next time.Time
	for k, l := range f.leases {
		if l.st != st {
			continue
		}
		if !now.Before(l.until) {
			f.drop(k)
			continue
		}
		if next.IsZero() || l.until.Before(next) {
			next = l.until
		}
	}
	return st.outstanding < st.max, next
}

// forget ends every lease of a stream that ended.
func (f *flowControl) forget(st *flowStream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, l := range f.leases {
		if l.st == st {
			delete(f.leases, k)
		}
	}
}

// flowStream is one StreamingPull under flow control. Its settings come
// from the stream's first request; outstanding is guarded by f.mu.
type flowStream struct {
	grpc.ServerStream
	f    *flowControl
	room chan struct{} // a lease of the stream ended

	first bool // the first request was read
	sub   string
	max   int64
	pings bool // the client expects an answer to its keep-alive pings
	// ackDeadline is the stream's ack deadline (a time.Duration), set by
	// the receiving side and read by the sending side.
	ackDeadline atomic.Int64

	sendMu      sync.Mutex // SendMsg by pstest's send loop, and ping answers
	outstanding int64
}

// defaultStreamAckDeadline stands for a stream's ack deadline when its
// first request leaves it unset (GCP then uses the subscription's, 10 s by
// default).
const defaultStreamAckDeadline = 10 * time.Second

func (s *flowStream) setAckDeadline(secs int32) {
	d := defaultStreamAckDeadline
	if secs > 0 {
		d = time.Duration(secs) * time.Second
	}
	s.ackDeadline.Store(int64(d))
}

func (s *flowStream) deadline() time.Duration { return time.Duration(s.ackDeadline.Load()) }

func (s *flowStream) signal() {
	select {
	case s.room <- struct{}{}:
	default:
	}
}

func (s *flowStream) RecvMsg(m any) error {
	for {
		if err := s.ServerStream.RecvMsg(m); err != nil {
			return err
		}
		req, ok := m.(*pubsubpb.StreamingPullRequest)
		if !ok {
			return nil
		}
		if !s.first {
			s.first = true
			s.sub, s.max, s.pings = req.Subscription, req.MaxOutstandingMessages, req.ProtocolVersion >= 1
			s.setAckDeadline(req.StreamAckDeadlineSeconds)
			return nil
		}
		if len(req.AckIds) > 0 {
			s.f.release(s.sub, req.AckIds)
		}
		if len(req.ModifyDeadlineAckIds) == len(req.ModifyDeadlineSeconds) {
			for i, id := range req.ModifyDeadlineAckIds {
				s.f.modify(s.sub, []string{id}, req.ModifyDeadlineSeconds[i])
			}
		}
		if s.max <= 0 || len(req.AckIds) > 0 || len(req.ModifyDeadlineAckIds) > 0 {
			return nil
		}
		// A keep-alive ping: answered here, not passed on to pstest
		// (which ignores a ping's new stream ack deadline as well).
		if req.StreamAckDeadlineSeconds > 0 {
			s.setAckDeadline(req.StreamAckDeadlineSeconds)
		}
		if s.pings {
			if err := s.send(&pubsubpb.StreamingPullResponse{}); err != nil {
				return err
			}
		}
	}
}

// SendMsg sends a response of pstest's, first waiting for room when it
// carries messages and the stream is under flow control.
func (s *flowStream) SendMsg(m any) error {
	resp, ok := m.(*pubsubpb.StreamingPullResponse)
	if !ok || s.max <= 0 || len(resp.ReceivedMessages) == 0 {
		return s.send(m)
	}
	if err := s.wait(resp.ReceivedMessages); err != nil {
		return err
	}
	s.f.lease(s, resp.ReceivedMessages)
	return s.send(m)
}

func (s *flowStream) send(m any) error {
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	return s.ServerStream.SendMsg(m)
}

// wait blocks until the stream has room or ends, renewing the held
// messages' deadlines in pstest meanwhile so that pstest does not deliver
// them again elsewhere while they wait here.
func (s *flowStream) wait(held []*pubsubpb.ReceivedMessage) error {
	ctx := s.Context()
	renew := time.Now().Add(s.deadline() / 2)
	for {
		now := time.Now()
		ok, next := s.f.room(s, now)
		if ok {
			return nil
		}
		if !now.Before(renew) {
			ids := make([]string, len(held))
			for i, m := range held {
				ids[i] = m.AckId
			}
			secs := int32(max(s.deadline()/time.Second, 1))
			if _, err := s.f.ps.GServer.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{Subscription: s.sub, AckIds: ids, AckDeadlineSeconds: secs}); err != nil {
				return err
			}
			renew = now.Add(s.deadline() / 2)
		}
		wake := renew
		if !next.IsZero() && next.Before(wake) {
			wake = next
		}
		t := time.NewTimer(max(wake.Sub(now), time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-s.room:
		case <-t.C:
		}
		t.Stop()
	}
}
