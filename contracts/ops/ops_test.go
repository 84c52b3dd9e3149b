package ops

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServeMetricsAndHealthThenShutDown(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "ops_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, Handler(reg), slog.New(slog.DiscardHandler)) }()
	get := func(path string) string {
		t.Helper()
		var resp *http.Response
		deadline := time.Now().Add(5 * time.Second)
		for {
			resp, err = http.Get("http://" + addr + path)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if body := get("/metrics"); !strings.Contains(body, "ops_test_total 3") {
		t.Errorf("/metrics lacks the counter:\n%s", body)
	}
	if body := get("/healthz"); body != "ok\n" {
		t.Errorf("/healthz = %q", body)
	}
	if body := get("/readyz"); body != `{"status":"ready","checks":{}}`+"\n" {
		t.Errorf("/readyz without dependencies = %q", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if err := Serve(t.Context(), "256.0.0.1:1", Handler(reg), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("Serve on a bad address returned nil")
	}
}
