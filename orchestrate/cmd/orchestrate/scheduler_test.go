package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/testenv"
)

// TestSchedulerDaemon runs "orchestrate scheduler" on a bolt file with a
// failing run queued, and checks the alerts reach the webhook and the
// Pub/Sub topic, /metrics and /healthz answer, the CLI is told the file is
// in use, and the daemon stops cleanly when its context ends.
func TestSchedulerDaemon(t *testing.T) {
	ctx := withTimeout(t, 45*time.Second)
	p := env.NewTestPlatform(t)
	clients := testenv.NewTestClients(t, p)
	h := newHarness(t)
	h.vars["LAB_PROJECT"] = p.Project
	h.vars["LAB_PREFIX"] = p.Prefix

	topic := "projects/" + p.Project + "/topics/orchestrate-alerts"
	sub := "projects/" + p.Project + "/subscriptions/orchestrate-alerts-test"
	if _, err := clients.PubSub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := clients.PubSub.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		t.Fatal(err)
	}
	hooks := make(chan notify.Alert, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a notify.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		hooks <- a
	}))
	defer hook.Close()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	h.ok("trigger", "etl", "--date", "2026-03-09T10:00:00Z", "--param", "fail=load_b")

	dctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var code int
	var daemonOut, daemonErr string
	wg.Go(func() {
		daemonOut, daemonErr, code = h.run(dctx, "scheduler", "--metrics-addr", addr, "--webhook", hook.URL,
			"--alert-topic", "orchestrate-alerts", "--poll", "20ms", "--owner", "daemon-test", "--grace", "2s", "--pool", "bq=1")
	})

	kinds := map[notify.Kind]bool{}
	for !kinds[notify.RunFailed] {
		select {
		case a := <-hooks:
			if a.DAGID != "etl" {
				t.Errorf("alert for dag %q", a.DAGID)
			}
			kinds[a.Kind] = true
		case <-ctx.Done():
			stop()
			wg.Wait()
			t.Fatalf("no run_failed alert on the webhook (got %v); daemon exit %d:\n%s\n%s", kinds, code, daemonOut, daemonErr)
		}
	}
	if !kinds[notify.TaskFailed] {
		t.Errorf("alerts %v: no task_failed", kinds)
	}

	if errOut := h.fails(exitFailure, "dags", "list"); !strings.Contains(errOut, "is in use, probably by a running `orchestrate scheduler`") {
		t.Errorf("CLI while the scheduler runs: %s", errOut)
	}
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v", path, resp.Status, err)
		}
		return string(body)
	}
	if got := get("/healthz"); got != "ok\n" {
		t.Errorf("/healthz = %q", got)
	}
	metrics := get("/metrics")
	for _, want := range []string{`orchestrate_runs_total{dag="etl",state="failed"} 1`, "go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	var mu sync.Mutex
	var published []string
	err = clients.PubSub.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		published = append(published, m.Attributes["kind"])
		if m.Attributes["kind"] == string(notify.RunFailed) {
			cancel()
		}
	})
	cancel()
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(strings.Join(published, ","), string(notify.RunFailed)) {
		t.Errorf("published alert kinds %v: no run_failed", published)
	}

	stop()
	wg.Wait()
	if code != 0 {
		t.Fatalf("scheduler exit %d:\n%s", code, daemonErr)
	}
	if !strings.Contains(daemonErr, `"msg":"scheduler stopped"`) {
		t.Errorf("no JSON shutdown log:\n%s", daemonErr)
	}
	var detail runDetail
	if err := json.Unmarshal([]byte(h.ok("runs", "show", "etl", "latest", "--json")), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Run.State != state.RunFailed {
		t.Errorf("run %s after the daemon: %s", detail.Run.RunID, detail.Run.State)
	}
}

// TestSchedulerReadyzFollowsABigQueryOutage runs "orchestrate scheduler"
// and takes the BigQuery emulator off the network: /readyz turns 503 naming
// bigquery (Cloud Storage and Firestore still ok) within seconds, the
// scheduler keeps running, and /readyz is 200 again soon after the
// emulator is back. It stops an emulator every test of this binary shares,
// so it must never run in parallel.
func TestSchedulerReadyzFollowsABigQueryOutage(t *testing.T) {
	ctx := withTimeout(t, 45*time.Second)
	p := env.NewTestPlatform(t)
	h := newHarness(t)
	h.vars["LAB_PROJECT"] = p.Project
	h.vars["LAB_PREFIX"] = p.Prefix
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()

	dctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	var daemonErr string
	var code int
	go func() {
		_, daemonErr, code = h.run(dctx, "scheduler", "--metrics-addr", addr, "--poll", "50ms", "--owner", "readyz-test", "--grace", "1s")
		done <- fmt.Errorf("exit %d", code)
	}()
	r := testenv.Readyz{T: t, URL: "http://" + addr + "/readyz", Done: done}

	r.Wait(ctx, "")
	if err := env.Stop(ctx, testenv.BigQuery); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Restart(context.WithoutCancel(ctx), testenv.BigQuery); err != nil {
			t.Error(err)
		}
	}()
	took := r.Wait(ctx, "bigquery")
	t.Logf("bigquery down: /readyz 503 after %v", took.Round(time.Millisecond))
	if err := env.Restart(ctx, testenv.BigQuery); err != nil {
		t.Fatal(err)
	}
	took = r.Wait(ctx, "")
	t.Logf("bigquery back: /readyz 200 after %v", took.Round(time.Millisecond))
	stop()
	<-done
	if code != 0 {
		t.Errorf("scheduler exit %d:\n%s", code, daemonErr)
	}
}
