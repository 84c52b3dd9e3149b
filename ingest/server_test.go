package ingest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/ops"
	"github.com/labplatform/platform/ingest"
)

func TestHealthAndMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t, nil, ingest.Options{Convention: ingest.Rename})
	r.write("R001", "a.csv", v2("1"))
	health := ingest.NewHealth(r.clock, time.Minute)
	down := ops.Check{Name: "storage", Probe: func(context.Context) error { return errors.New("bucket t-raw: unavailable") }}
	srv := httptest.NewServer(ingest.Handler(health, r.reg, down))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	r.pass()
	health.PassEnded()
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after a pass: %d %s", code, body)
	}
	code, body := get("/metrics")
	for _, want := range []string{
		`ingest_objects_shipped_total{kind="file",robot="R001"} 1`,
		`ingest_bytes_shipped_total{kind="file",robot="R001"}`,
		`ingest_backlog_files{robot="R001"}`,
		`ingest_lag_seconds_count{kind="file"} 1`,
		`ingest_passes_total 1`,
		`lab_dependency_up{dependency="storage"} 0`,
	} {
		if code != http.StatusOK || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || body != `{"status":"unready","checks":{"storage":"bucket t-raw: unavailable"}}`+"\n" {
		t.Errorf("/readyz with the bucket down: %d %s", code, body)
	}
	r.clock.Advance(2 * time.Minute)
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz without a pass for 2m: %d, want 503", code)
	}
}
