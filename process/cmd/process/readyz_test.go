package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/testenv"
)

// TestWorkerReadyzFollowsOutages runs "process worker" on the emulators and
// takes Firestore, then Pub/Sub, off the network: /readyz turns 503 naming
// that dependency (and only it) within seconds, the worker keeps running,
// and /readyz is 200 again soon after the emulator is back. It stops
// emulators, so it has an Env of its own and does not run in parallel.
func TestWorkerReadyzFollowsOutages(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	env, err := testenv.Start(ctx, testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Close(); err != nil {
			t.Error(err)
		}
	}()
	p := env.NewTestPlatform(t)
	vars := map[string]string{}
	for _, kv := range p.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	addr := freeAddr(t)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(wctx, []string{"worker", "-listen", addr, "-tmp", t.TempDir()}, func(k string) string { return vars[k] }, nil, io.Discard, &stderr)
	}()
	r := testenv.Readyz{T: t, URL: "http://" + addr + "/readyz", Done: done}

	r.Wait(ctx, "")
	for _, svc := range []testenv.Service{testenv.Firestore, testenv.PubSub} {
		if err := env.Stop(ctx, svc); err != nil {
			t.Fatal(err)
		}
		took := r.Wait(ctx, string(svc))
		t.Logf("%s down: /readyz 503 after %v", svc, took.Round(time.Millisecond))
		if err := env.Restart(ctx, svc); err != nil {
			t.Fatal(err)
		}
		took = r.Wait(ctx, "")
		t.Logf("%s back: /readyz 200 after %v", svc, took.Round(time.Millisecond))
	}
	if body := get(ctx, t, addr, "/metrics"); !strings.Contains(body, `lab_dependency_up{dependency="pubsub"} 1`) ||
		!strings.Contains(body, `lab_dependency_up{dependency="storage"} 1`) || !strings.Contains(body, `lab_dependency_up{dependency="firestore"} 1`) {
		t.Errorf("/metrics after the outages lacks lab_dependency_up 1 for each dependency:\n%s", body)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("worker: %v\n%s", err, stderr.String())
	}
}

// get returns the body of a GET of path on the service at addr.
func get(ctx context.Context, t *testing.T, addr, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}
