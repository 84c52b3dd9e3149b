package ingest

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/labplatform/platform/contracts/ops"
)

// Health tracks passes for /healthz.
type Health struct {
	clock   Clock
	maxAge  time.Duration
	started time.Time
	last    atomic.Int64 // unix nanos of the last pass end
}

// NewHealth reports unhealthy when no pass ended within maxAge.
func NewHealth(clock Clock, maxAge time.Duration) *Health {
	return &Health{clock: clock, maxAge: maxAge, started: clock.Now()}
}

// PassEnded records the end of a pass.
func (h *Health) PassEnded() { h.last.Store(h.clock.Now().UnixNano()) }

func (h *Health) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	last := h.started
	if n := h.last.Load(); n != 0 {
		last = time.Unix(0, n)
	}
	age := h.clock.Now().Sub(last)
	if age > h.maxAge {
		http.Error(w, fmt.Sprintf("no pass ended for %s", age.Round(time.Second)), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok: last pass %s ago\n", age.Round(time.Millisecond))
}

// Handler serves /healthz from h, /metrics from reg and /readyz from the
// readiness of checks (contracts/ops: 200 while every dependency answers,
// 503 naming those that do not; always 200 without checks). With checks it
// registers lab_dependency_up on reg.
func Handler(h *Health, reg *prometheus.Registry, checks ...ops.Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ready := ops.NewReadiness(checks, ops.ReadinessOptions{})
	if len(checks) > 0 {
		reg.MustRegister(ready)
	}
	mux.Handle("GET /readyz", ready)
	return mux
}
