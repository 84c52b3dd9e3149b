package testenv

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/ops"
)

// Readyz polls a service's /readyz (contracts/ops) for a test that takes
// the service's dependencies down with Env.Stop and brings them back with
// Env.Restart.
type Readyz struct {
	T   testing.TB
	URL string // the service's /readyz
	// Done, when not nil, is the service's end: the test fails if the
	// service ends while /readyz is polled.
	Done <-chan error
}

// readyzTimeout is how long Wait polls before it fails the test.
const readyzTimeout = 20 * time.Second

// Wait polls every 100 ms until /readyz answers 200 with every check "ok"
// (down empty), or 503 with check down failing and every other check "ok",
// and returns how long that took. It fails the test after 20 s.
func (r Readyz) Wait(ctx context.Context, down string) time.Duration {
	r.T.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, readyzTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		code, rep, body := r.read(ctx)
		if down == "" && code == http.StatusOK && rep.Ready() && checksOK(rep.Checks, "") {
			return time.Since(start)
		}
		if down != "" && code == http.StatusServiceUnavailable && rep.Status == ops.StatusUnready &&
			rep.Checks[down] != "" && rep.Checks[down] != "ok" && checksOK(rep.Checks, down) {
			r.T.Logf("/readyz %d: %s", code, strings.TrimSpace(body))
			return time.Since(start)
		}
		select {
		case err := <-r.Done:
			r.T.Fatalf("the service ended while /readyz was polled: %v", err)
		case <-ctx.Done():
			want := "200, every check ok"
			if down != "" {
				want = "503 naming " + down
			}
			r.T.Fatalf("/readyz: want %s within %v; last answer %s", want, readyzTimeout, body)
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
func (r Readyz) read(ctx context.Context) (int, ops.Report, string) {
	var rep ops.Report
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		r.T.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, rep, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, rep, err.Error()
	}
	// A body that is not a report leaves rep empty: Wait polls on, and
	// shows the body if it gives up.
	_ = json.Unmarshal(body, &rep)
	return resp.StatusCode, rep, string(body)
}
