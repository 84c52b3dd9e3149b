package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"

	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

var alert = notify.Alert{
	Kind:    notify.RetriesExhausted,
	DAGID:   "results_daily",
	RunID:   "scheduled__2026-03-01T00:00:00Z",
	TaskID:  "load_day",
	Try:     3,
	Message: "load lab.results: job orchestrate_x: boom",
	At:      time.Date(2026, 3, 2, 1, 2, 3, 0, time.UTC),
	Details: map[string]string{"table": "lab.results"},
}

func TestAlertJSONIsSnakeCase(t *testing.T) {
	b, err := json.Marshal(alert)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"kind":"retries_exhausted","dag_id":"results_daily","run_id":"scheduled__2026-03-01T00:00:00Z","task_id":"load_day","try":3,` +
		`"message":"load lab.results: job orchestrate_x: boom","at":"2026-03-02T01:02:03Z","details":{"table":"lab.results"}}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant   %s", b, want)
	}
}

func TestLogWritesAlertFields(t *testing.T) {
	for _, tc := range []struct {
		kind  notify.Kind
		level string
	}{
		{kind: notify.RetriesExhausted, level: "ERROR"},
		{kind: notify.RunFailed, level: "ERROR"},
		{kind: notify.SensorTimeout, level: "ERROR"},
		{kind: notify.TaskFailed, level: "WARN"},
		{kind: notify.DeadlineMissed, level: "WARN"},
		{kind: notify.QualityAlert, level: "WARN"},
	} {
		var buf bytes.Buffer
		a := alert
		a.Kind = tc.kind
		if err := (notify.Log{Logger: slog.New(slog.NewJSONHandler(&buf, nil))}).Notify(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("log line %q: %v", buf.String(), err)
		}
		want := map[string]any{
			"level": tc.level, "msg": "alert", "kind": string(tc.kind), "dag_id": "results_daily",
			"run_id": alert.RunID, "task_id": "load_day", "try": 3.0, "message": alert.Message,
			"at": "2026-03-02T01:02:03Z", "details": map[string]any{"table": "lab.results"},
		}
		delete(got, "time")
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: logged %v\nwant %v", tc.kind, got, want)
		}
	}
}

// hook is a webhook endpoint that answers with the given statuses in turn
// (the last one from then on) and records what it received.
type hook struct {
	statuses []int
	calls    atomic.Int32
	mu       sync.Mutex
	bodies   [][]byte
	types    []string
}

func (h *hook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := int(h.calls.Add(1))
	body, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	h.bodies = append(h.bodies, body)
	h.types = append(h.types, r.Method+" "+r.Header.Get("Content-Type"))
	h.mu.Unlock()
	status := h.statuses[min(n, len(h.statuses))-1]
	w.WriteHeader(status)
	io.WriteString(w, http.StatusText(status))
}

func TestWebhook(t *testing.T) {
	for _, tc := range []struct {
		name      string
		statuses  []int
		retries   int
		wantCalls int32
		wantErr   string
	}{
		{name: "success", statuses: []int{204}, retries: 3, wantCalls: 1},
		{name: "500 then success", statuses: []int{500, 503, 200}, retries: 3, wantCalls: 3},
		{name: "429 is retried", statuses: []int{429, 200}, retries: 1, wantCalls: 2},
		{name: "persistent 500", statuses: []int{500}, retries: 2, wantCalls: 3, wantErr: "attempt 3: status 500 Internal Server Error: Internal Server Error"},
		{name: "no retries", statuses: []int{502}, retries: 0, wantCalls: 1, wantErr: "attempt 1: status 502"},
		{name: "4xx is permanent", statuses: []int{400, 200}, retries: 3, wantCalls: 1, wantErr: "status 400 Bad Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hook{statuses: tc.statuses}
			srv := httptest.NewServer(h)
			defer srv.Close()
			w := notify.Webhook{URL: srv.URL, Client: srv.Client(), Retries: tc.retries, Backoff: time.Millisecond}
			err := w.Notify(t.Context(), alert)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Notify: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Notify = %v, want an error with %q", err, tc.wantErr)
			}
			if got := h.calls.Load(); got != tc.wantCalls {
				t.Errorf("%d calls, want %d", got, tc.wantCalls)
			}
			for i, b := range h.bodies {
				var got notify.Alert
				if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, alert) {
					t.Errorf("call %d: body %s decodes to %+v, %v", i, b, got, err)
				}
				if h.types[i] != "POST application/json" {
					t.Errorf("call %d: %s", i, h.types[i])
				}
			}
		})
	}
}

// TestWebhookBackoffHonoursContext: a context that ends during the backoff
// ends the retries at once.
func TestWebhookBackoffHonoursContext(t *testing.T) {
	h := &hook{statuses: []int{500}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := notify.Webhook{URL: srv.URL, Client: srv.Client(), Retries: 5, Backoff: time.Hour}.Notify(ctx, alert)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "status 500") {
		t.Errorf("Notify = %v, want the last status and the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Notify returned after %v", d)
	}
	if got := h.calls.Load(); got != 1 {
		t.Errorf("%d calls, want 1", got)
	}
}

func TestWebhookUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	err := notify.Webhook{URL: url, Retries: 1, Backoff: time.Millisecond}.Notify(t.Context(), alert)
	if err == nil || !strings.Contains(err.Error(), "attempt 2") {
		t.Errorf("Notify = %v, want an error after 2 attempts", err)
	}
}

func TestPubSub(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	topic := "projects/" + p.Project + "/topics/alerts"
	sub := "projects/" + p.Project + "/subscriptions/alerts-test"
	if _, err := c.PubSub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PubSub.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{Name: sub, Topic: topic}); err != nil {
		t.Fatal(err)
	}
	pub := c.PubSub.Publisher(topic)
	defer pub.Stop()
	if err := (notify.PubSub{Publisher: pub}).Notify(ctx, alert); err != nil {
		t.Fatalf("Notify: %v", err)
	}

	rctx, stop := context.WithCancel(ctx)
	var got *pubsub.Message
	err := c.PubSub.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		got = m
		stop()
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if got == nil {
		t.Fatal("no message received")
	}
	var a notify.Alert
	if err := json.Unmarshal(got.Data, &a); err != nil || !reflect.DeepEqual(a, alert) {
		t.Errorf("message %s decodes to %+v, %v", got.Data, a, err)
	}
	if want := map[string]string{"kind": "retries_exhausted", "dag_id": "results_daily"}; !reflect.DeepEqual(got.Attributes, want) {
		t.Errorf("attributes = %v, want %v", got.Attributes, want)
	}

	missing := c.PubSub.Publisher("projects/" + p.Project + "/topics/no-such-topic")
	defer missing.Stop()
	if err := (notify.PubSub{Publisher: missing}).Notify(ctx, alert); err == nil {
		t.Error("publish to a missing topic succeeded")
	}
}

func TestMultiNotifiesAllAndJoinsErrors(t *testing.T) {
	var mu sync.Mutex
	var got []string
	record := func(name string, err error) notify.Notifier {
		return notify.Func(func(_ context.Context, a notify.Alert) error {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, name+":"+a.TaskID)
			return err
		})
	}
	errA, errC := errors.New("a is down"), errors.New("c is down")
	m := notify.Multi{record("a", errA), nil, record("b", nil), record("c", errC)}
	err := m.Notify(t.Context(), alert)
	if !errors.Is(err, errA) || !errors.Is(err, errC) {
		t.Errorf("Notify = %v, want both failures", err)
	}
	if len(got) != 3 {
		t.Errorf("notified %v, want a, b and c", got)
	}
	if err := (notify.Multi{record("b", nil)}).Notify(t.Context(), alert); err != nil {
		t.Errorf("all succeed: %v", err)
	}
}
