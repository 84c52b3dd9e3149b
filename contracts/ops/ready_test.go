package ops

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeClock is the readiness cache's clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func ok(context.Context) error { return nil }

func failing(msg string) func(context.Context) error {
	return func(context.Context) error { return errors.New(msg) }
}

func TestReadinessAnswers(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 400) // 800 bytes; after the "x", byte 512 is inside a rune
	hung := make(chan struct{})
	t.Cleanup(func() { close(hung) })
	tests := []struct {
		name   string
		checks []Check
		want   Report
	}{
		{name: "no dependencies", checks: nil, want: Report{Status: StatusReady, Checks: map[string]string{}}},
		{
			name:   "all answer",
			checks: []Check{{Name: "storage", Probe: ok}, {Name: "firestore", Probe: ok}},
			want:   Report{Status: StatusReady, Checks: map[string]string{"storage": "ok", "firestore": "ok"}},
		},
		{
			name:   "one fails",
			checks: []Check{{Name: "storage", Probe: ok}, {Name: "pubsub", Probe: failing("get subscription process-raw: Unavailable")}},
			want:   Report{Status: StatusUnready, Checks: map[string]string{"storage": "ok", "pubsub": "get subscription process-raw: Unavailable"}},
		},
		{
			name: "a probe ends with its deadline",
			checks: []Check{{Name: "bigquery", Probe: func(ctx context.Context) error {
				<-ctx.Done()
				return ctx.Err()
			}}},
			want: Report{Status: StatusUnready, Checks: map[string]string{"bigquery": context.DeadlineExceeded.Error()}},
		},
		{
			name: "a probe ignores its deadline",
			checks: []Check{{Name: "storage", Probe: ok}, {Name: "firestore", Probe: func(context.Context) error {
				<-hung
				return nil
			}}},
			want: Report{Status: StatusUnready, Checks: map[string]string{"storage": "ok", "firestore": "no answer within 50ms"}},
		},
		{
			name:   "long error text is cut on a rune boundary",
			checks: []Check{{Name: "storage", Probe: failing("x" + long)}},
			want:   Report{Status: StatusUnready, Checks: map[string]string{"storage": "x" + long[:maxErrorText-2] + "…"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewReadiness(tt.checks, ReadinessOptions{Timeout: 50 * time.Millisecond})
			start := time.Now()
			got := r.Check(t.Context())
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Check took %v with a 50ms probe timeout", took)
			}
			if got.Status != tt.want.Status || got.Ready() != (tt.want.Status == StatusReady) || len(got.Checks) != len(tt.want.Checks) {
				t.Fatalf("Check = %+v, want %+v", got, tt.want)
			}
			for name, want := range tt.want.Checks {
				if got.Checks[name] != want {
					t.Errorf("check %s = %q, want %q", name, got.Checks[name], want)
				}
			}
		})
	}
}

// TestReadinessCachesAnAnswer: an answer is served again for the TTL, then
// the probes run again; a clock that goes back also refreshes it.
func TestReadinessCachesAnAnswer(t *testing.T) {
	t.Parallel()
	clk := newFakeClock()
	var calls atomic.Int32
	var down atomic.Bool
	down.Store(true)
	r := NewReadiness([]Check{{Name: "firestore", Probe: func(context.Context) error {
		calls.Add(1)
		if down.Load() {
			return errors.New("get readyz/probe: Unavailable")
		}
		return nil
	}}}, ReadinessOptions{Now: clk.Now})

	steps := []struct {
		advance   time.Duration
		up        bool
		wantCalls int32
		wantReady bool
	}{
		{advance: 0, up: false, wantCalls: 1, wantReady: false},
		{advance: 0, up: true, wantCalls: 1, wantReady: false}, // cached
		{advance: 999 * time.Millisecond, up: true, wantCalls: 1, wantReady: false},
		{advance: time.Millisecond, up: true, wantCalls: 2, wantReady: true}, // TTL reached
		{advance: 500 * time.Millisecond, up: false, wantCalls: 2, wantReady: true},
		{advance: -time.Hour, up: false, wantCalls: 3, wantReady: false}, // clock went back
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		down.Store(!s.up)
		got := r.Check(t.Context())
		if calls.Load() != s.wantCalls || got.Ready() != s.wantReady {
			t.Errorf("step %d: %d probe calls, ready %v; want %d, %v", i, calls.Load(), got.Ready(), s.wantCalls, s.wantReady)
		}
	}
	// The returned map is the caller's.
	got := r.Check(t.Context())
	got.Checks["firestore"] = "changed"
	if again := r.Check(t.Context()); again.Checks["firestore"] == "changed" {
		t.Error("a caller's change to a Report reached the cached answer")
	}
}

// TestReadinessAskersShareARound: many concurrent askers make one round of
// probes, and a caller that gave up does not leave a failure behind.
func TestReadinessAskersShareARound(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	r := NewReadiness([]Check{{Name: "storage", Probe: func(ctx context.Context) error {
		calls.Add(1)
		return ctx.Err()
	}}}, ReadinessOptions{Now: newFakeClock().Now})
	gone, cancel := context.WithCancel(t.Context())
	cancel()
	if got := r.Check(gone); !got.Ready() {
		t.Errorf("Check with a cancelled caller: %+v", got)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if got := r.Check(t.Context()); !got.Ready() {
				t.Errorf("concurrent Check: %+v", got)
			}
		})
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Errorf("51 askers within the TTL made %d rounds, want 1", n)
	}
}

func TestNewReadinessRejectsBadChecks(t *testing.T) {
	t.Parallel()
	for _, checks := range [][]Check{
		{{Name: "", Probe: ok}},
		{{Name: "storage"}},
		{{Name: "storage", Probe: ok}, {Name: "storage", Probe: ok}},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewReadiness(%d checks named %q...) did not panic", len(checks), checks[0].Name)
				}
			}()
			NewReadiness(checks, ReadinessOptions{})
		}()
	}
}

// TestHandlerReadyz: /readyz answers 200 or 503 with the Report, and
// /metrics carries lab_dependency_up per dependency.
func TestHandlerReadyz(t *testing.T) {
	t.Parallel()
	get := func(t *testing.T, h http.Handler, path string) (int, http.Header, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, rec.Result().Header, string(body)
	}

	reg := prometheus.NewRegistry()
	h := Handler(reg, Check{Name: "storage", Probe: ok}, Check{Name: "pubsub", Probe: failing("get subscription process-raw: GET /x?a=1&b=2: NotFound")})
	code, header, body := get(t, h, "/readyz")
	var rep Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || rep.Status != StatusUnready || rep.Checks["storage"] != "ok" ||
		rep.Checks["pubsub"] != "get subscription process-raw: GET /x?a=1&b=2: NotFound" || !strings.Contains(body, "a=1&b=2") || header.Get("Content-Type") != "application/json" {
		t.Errorf("/readyz with pubsub failing: %d %s %q", code, header.Get("Content-Type"), body)
	}
	if got := dependencyUp(t, reg); len(got) != 2 || got["pubsub"] != 0 || got["storage"] != 1 {
		t.Errorf("lab_dependency_up = %v, want pubsub 0, storage 1", got)
	}
	if code, _, body := get(t, h, "/metrics"); code != http.StatusOK || !strings.Contains(body, `lab_dependency_up{dependency="storage"} 1`) {
		t.Errorf("/metrics: %d, lacks lab_dependency_up:\n%s", code, body)
	}

	bare := prometheus.NewRegistry()
	h = Handler(bare)
	if code, _, body := get(t, h, "/readyz"); code != http.StatusOK || body != `{"status":"ready","checks":{}}`+"\n" {
		t.Errorf("/readyz without dependencies: %d %q", code, body)
	}
	if got := dependencyUp(t, bare); len(got) != 0 {
		t.Errorf("lab_dependency_up without dependencies: %v", got)
	}
	if code, _, _ := get(t, h, "/readyz/x"); code != http.StatusNotFound {
		t.Errorf("/readyz/x: %d, want 404", code)
	}
}

// dependencyUp gathers lab_dependency_up from reg, by dependency.
func dependencyUp(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "lab_dependency_up" {
			continue
		}
		if f.GetType().String() != "GAUGE" {
			t.Errorf("lab_dependency_up is a %s", f.GetType())
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "dependency" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
