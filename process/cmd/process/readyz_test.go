package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	r := readyz{t: t, url: "http://" + addr + "/readyz", done: done}

	r.wait(ctx, "")
	for _, svc := range []testenv.Service{testenv.Firestore, testenv.PubSub} {
		if err := env.Stop(ctx, svc); err != nil {
			t.Fatal(err)
		}
		took := r.wait(ctx, string(svc))
		t.Logf("%s down: /readyz 503 after %v", svc, took.Round(time.Millisecond))
		if err := env.Restart(ctx, svc); err != nil {
			t.Fatal(err)
		}
		took = r.wait(ctx, "")
		t.Logf("%s back: /readyz 200 after %v", svc, took.Round(time.Millisecond))
	}
	if body := r.get(ctx, "/metrics"); !strings.Contains(body, `lab_dependency_up{dependency="pubsub"} 1`) ||
		!strings.Contains(body, `lab_dependency_up{dependency="storage"} 1`) || !strings.Contains(body, `lab_dependency_up{dependency="firestore"} 1`) {
		t.Errorf("/metrics after the outages lacks lab_dependency_up 1 for each dependency:\n%s", body)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("worker: %v\n%s", err, stderr.String())
	}
}

// readyz polls a service's /readyz.
type readyz struct {
	t    *testing.T
	url  string
	done <-chan error // the service's end: it must not end while polled
}

// wait polls until /readyz answers 200 with every check "ok" (down empty),
// or 503 with the check down failing and every other "ok", and returns how
// long that took. The test fails after 20 s.
func (r readyz) wait(ctx context.Context, down string) time.Duration {
	r.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		code, rep, body := r.read(ctx)
		last = body
		if down == "" && code == http.StatusOK && rep.Status == "ready" && allOK(rep.Checks, "") {
			return time.Since(start)
		}
		if down != "" && code == http.StatusServiceUnavailable && rep.Status == "unready" &&
			rep.Checks[down] != "" && rep.Checks[down] != "ok" && allOK(rep.Checks, down) {
			r.t.Logf("/readyz %d: %s", code, strings.TrimSpace(body))
			return time.Since(start)
		}
		select {
		case err := <-r.done:
			r.t.Fatalf("the service ended while /readyz was polled: %v", err)
		case <-ctx.Done():
			want := "200, every check ok"
			if down != "" {
				want = "503 naming " + down
			}
			r.t.Fatalf("/readyz: want %s within 20s; last answer %s", want, last)
		case <-tick.C:
		}
	}
}

func allOK(checks map[string]string, except string) bool {
	if len(checks) == 0 {
		return false
	}
	for name, v := range checks {
		if name != except && v != "ok" {
			return false
		}
	}
	return true
}

// readyReport is the body of /readyz.
type readyReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// read returns the status code, the decoded body and the body of one GET
// (a connection error as the body, with code 0).
func (r readyz) read(ctx context.Context) (int, readyReport, string) {
	var rep readyReport
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, rep, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(body, &rep)
	return resp.StatusCode, rep, string(body)
}

func (r readyz) get(ctx context.Context, path string) string {
	r.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(r.url, "/readyz")+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
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
