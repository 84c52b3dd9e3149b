package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/testenv"
)

// TestRunReadyzFollowsAStorageOutage runs "ingest run" and takes the Cloud
// Storage emulator off the network: /readyz turns 503 naming storage within
// seconds, ingest keeps running, and /readyz is 200 again soon after the
// emulator is back. It stops an emulator every test of this binary shares,
// so it must never run in parallel.
func TestRunReadyzFollowsAStorageOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "exports")
	if err := os.MkdirAll(filepath.Join(root, "R001"), 0o755); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	getenv := getenvOf(p, "INGEST_ROOT="+root, "INGEST_CHECKPOINT="+filepath.Join(dir, "ckpt.db"))

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(rctx, []string{"run", "-listen", addr, "-interval", "200ms", "-convention", "rename"}, getenv, io.Discard, &stderr)
	}()
	r := readyzPoller{t: t, url: "http://" + addr + "/readyz", done: done}

	r.wait(ctx, "")
	if err := env.Stop(ctx, testenv.Storage); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Restart(context.WithoutCancel(ctx), testenv.Storage); err != nil {
			t.Error(err)
		}
	}()
	took := r.wait(ctx, "storage")
	t.Logf("storage down: /readyz 503 after %v", took.Round(time.Millisecond))
	if err := env.Restart(ctx, testenv.Storage); err != nil {
		t.Fatal(err)
	}
	took = r.wait(ctx, "")
	t.Logf("storage back: /readyz 200 after %v", took.Round(time.Millisecond))
	stop()
	if err := <-done; err != nil {
		t.Errorf("ingest run: %v\n%s", err, stderr.String())
	}
}

// readyzPoller polls a service's /readyz.
type readyzPoller struct {
	t    *testing.T
	url  string
	done <-chan error // the service's end: it must not end while polled
}

// readyReport is the body of /readyz.
type readyReport struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

// wait polls until /readyz answers 200 with every check "ok" (down empty),
// or 503 with the check down failing and every other "ok", and returns how
// long that took. The test fails after 20 s.
func (r readyzPoller) wait(ctx context.Context, down string) time.Duration {
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
		if down == "" && code == http.StatusOK && rep.Status == "ready" && checksOK(rep.Checks, "") {
			return time.Since(start)
		}
		if down != "" && code == http.StatusServiceUnavailable && rep.Status == "unready" &&
			rep.Checks[down] != "" && rep.Checks[down] != "ok" && checksOK(rep.Checks, down) {
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

// checksOK reports whether there are checks and every one but except is ok.
func checksOK(checks map[string]string, except string) bool {
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

// read returns the status code, the decoded body and the body of one GET
// (a connection error as the body, with code 0).
func (r readyzPoller) read(ctx context.Context) (int, readyReport, string) {
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
