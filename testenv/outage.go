package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
)

// Service names one emulator of an Env, for Stop and Restart.
type Service string

// The emulators of an Env.
const (
	Storage   Service = "storage"
	PubSub    Service = "pubsub"
	Firestore Service = "firestore"
	BigQuery  Service = "bigquery"
)

// Services lists every emulator, in the order Start starts them.
func Services() []Service { return []Service{PubSub, Storage, BigQuery, Firestore} }

// ParseService returns the Service named s ("storage", "pubsub", "firestore"
// or "bigquery").
func ParseService(s string) (Service, error) {
	for _, v := range Services() {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("testenv: unknown emulator %q (want storage, pubsub, firestore or bigquery)", s)
}

// Stop takes one emulator off the network, as an outage does: its port
// refuses new connections and the open ones are closed, so gRPC clients see
// UNAVAILABLE and HTTP clients a refused or reset connection, and their
// retries run for real. The emulator's state stays in memory (and in the
// data directory): objects, upload sessions, topics, subscriptions with
// their unacknowledged messages, documents, tables. Firestore transactions
// open at the outage are aborted (their next use fails with ABORTED, which
// the client retries). A request in flight may still complete on the
// emulator although its client sees the connection fail, as in a real
// outage. ctx bounds the wait for the gRPC emulators' handlers to return;
// stopping a stopped emulator does nothing.
func (e *Env) Stop(ctx context.Context, s Service) error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if _, err := ParseService(string(s)); err != nil {
		return err
	}
	if e.closed {
		return fmt.Errorf("testenv: stop %s emulator: the Env is closed", s)
	}
	var err error
	switch s {
	case Firestore:
		err = e.firestore.Suspend()
	default:
		err = e.front(s).down(ctx)
	}
	if err != nil {
		return fmt.Errorf("testenv: stop %s emulator: %w", s, err)
	}
	e.log.Info("emulator stopped", "emulator", string(s))
	return nil
}

// Restart brings an emulator that Stop took down back on the same host and
// port, with the state it had. Clients built before the outage work again
// without being rebuilt, once they reconnect (gRPC clients on their own
// reconnection backoff). Restart retries while the port is still taken by
// another socket, until ctx ends; restarting a running emulator does
// nothing.
func (e *Env) Restart(ctx context.Context, s Service) error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if _, err := ParseService(string(s)); err != nil {
		return err
	}
	if e.closed {
		return fmt.Errorf("testenv: restart %s emulator: the Env is closed", s)
	}
	var err error
	switch s {
	case Firestore:
		err = retryInUse(ctx, e.firestore.Resume)
	default:
		err = e.front(s).up(ctx)
	}
	if err != nil {
		return fmt.Errorf("testenv: restart %s emulator: %w", s, err)
	}
	e.log.Info("emulator restarted", "emulator", string(s))
	return nil
}

// front returns the front of an emulator other than Firestore.
func (e *Env) front(s Service) *listenerFront {
	switch s {
	case Storage:
		return e.gcsFront
	case PubSub:
		return e.pubsubFront
	default:
		return e.bqFront
	}
}

// server is what listenerFront needs of an http.Server or a grpc.Server.
type server interface {
	// Close closes the listener and every connection at once; a
	// grpc.Server also waits for its handlers to return.
	Close() error
	// Shutdown stops the server gracefully, bounded by ctx.
	Shutdown(ctx context.Context) error
}

// listenerFront is the network side of an in-process emulator: a server on
// one address, which can be closed and started again on the same address
// while the emulator's state (the handler behind it) stays.
type listenerFront struct {
	addr  string
	serve func(net.Listener) server // starts serving on a listener

	mu  sync.Mutex
	srv server // nil while down
}

func newListenerFront(lis net.Listener, serve func(net.Listener) server) *listenerFront {
	return &listenerFront{addr: lis.Addr().String(), serve: serve, srv: serve(lis)}
}

func (f *listenerFront) down(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv == nil {
		return nil
	}
	srv := f.srv
	f.srv = nil
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("wait for in-flight requests: %w", ctx.Err())
	}
}

func (f *listenerFront) up(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		return nil
	}
	var lis net.Listener
	err := retryInUse(ctx, func(ctx context.Context) error {
		var lc net.ListenConfig
		var err error
		lis, err = lc.Listen(ctx, "tcp", f.addr)
		return err
	})
	if err != nil {
		return err
	}
	f.srv = f.serve(lis)
	return nil
}

// close stops serving for good, gracefully if it is up.
func (f *listenerFront) close(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv == nil {
		return nil
	}
	err := f.srv.Shutdown(ctx)
	f.srv = nil
	return err
}

// grpcServer adapts a grpc.Server to server. Both ways of stopping are
// immediate: Pub/Sub's streaming pulls never end by themselves.
type grpcServer struct{ *grpc.Server }

func (g grpcServer) Close() error { g.Stop(); return nil }

func (g grpcServer) Shutdown(context.Context) error { g.Stop(); return nil }

var _ server = (*http.Server)(nil)

// retryInUse calls listen until it does not fail with EADDRINUSE (the port,
// free while an emulator was down, can be taken by a client's outgoing
// connection) or ctx ends.
func retryInUse(ctx context.Context, listen func(context.Context) error) error {
	for {
		err := listen(ctx)
		if !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}
