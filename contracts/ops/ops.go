// Package ops is how every service of the platform exposes itself to
// operators, on its own listener shut down gracefully with the service:
// Prometheus metrics on GET /metrics, a liveness answer on GET /healthz
// (the process serves), and a readiness answer on GET /readyz (its
// dependencies answer: Readiness, with the probes StorageCheck,
// PubSubCheck, FirestoreCheck and BigQueryCheck), also exported as the
// gauge lab_dependency_up{dependency}.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ShutdownTimeout bounds the graceful shutdown of Serve.
const ShutdownTimeout = 5 * time.Second

// Handler serves GET /metrics from reg, GET /healthz with "ok" and GET
// /readyz from a Readiness of checks with the default options (always
// ready without checks). With checks it registers that Readiness on reg
// (lab_dependency_up), so it panics, as MustRegister does, when reg holds
// lab_dependency_up already.
func Handler(reg *prometheus.Registry, checks ...Check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ready := NewReadiness(checks, ReadinessOptions{})
	if len(checks) > 0 {
		reg.MustRegister(ready)
	}
	mux.Handle("GET /readyz", ready)
	return mux
}

// Serve listens on addr and serves h until ctx ends, then shuts the server
// down, letting requests in flight finish for up to ShutdownTimeout.
func Serve(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serving metrics and health", "addr", lis.Addr().String())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down %s: %w", addr, err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", addr, err)
	}
	return nil
}
