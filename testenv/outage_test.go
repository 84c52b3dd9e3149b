package testenv_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/testenv"
)

// The outage tests take emulators of the shared Env down, so none of them
// may call t.Parallel: Go runs them before the parallel tests resume, so no
// other test sees the outages.

// outage stops emulator s for the rest of the test, unless the test restarts
// it earlier.
func outage(t *testing.T, s testenv.Service) {
	t.Helper()
	if err := env.Stop(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := env.Restart(ctx, s); err != nil {
			t.Errorf("restart %s after the test: %v", s, err)
		}
	})
}

func restart(ctx context.Context, t *testing.T, s testenv.Service) {
	t.Helper()
	if err := env.Restart(ctx, s); err != nil {
		t.Fatal(err)
	}
}

// wantRefused checks that nothing accepts connections on addr.
func wantRefused(t *testing.T, addr string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		conn.Close()
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s during the outage: %v, want connection refused", addr, err)
	}
}

// grpcConn opens a plain gRPC connection to addr, closed at the end of the
// test. The official clients retry UNAVAILABLE; a raw stub on this
// connection shows what they see.
func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// within runs call with a deadline of a second: long enough for a refused
// connection to be retried, short enough to show the call does not hang.
func within(ctx context.Context, call func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return call(ctx)
}

// eventually polls cond until it holds or ctx ends.
func eventually(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, ctx.Err())
		case <-tick.C:
		}
	}
}

// TestOutages takes each emulator down and brings it back, on one platform
// (provisioning one takes a second or two under -race).
func TestOutages(t *testing.T) {
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, config.Platform, *testenv.Clients)
	}{
		{name: "storage keeps objects", run: storageOutageKeepsObjects},
		{name: "pubsub keeps messages and acks", run: pubSubOutageKeepsMessagesAndAcks},
		{name: "firestore keeps documents", run: firestoreOutageKeepsDocuments},
		{name: "bigquery keeps tables", run: bigQueryOutageKeepsTables},
		{name: "upload during pubsub outage is notified", run: uploadDuringPubSubOutageIsNotified},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, p, c) })
	}
}

func storageOutageKeepsObjects(t *testing.T, p config.Platform, c *testenv.Clients) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	bucket := names.CuratedBucket(p.Prefix)
	content := []byte("kept across the outage\n")
	if err := upload(ctx, c.Storage, bucket, "kept.txt", content); err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(p.Emulators.Storage, "http://")
	// A keep-alive connection, open when the outage starts.
	httpc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(httpc.CloseIdleConnections)
	get := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.Emulators.Storage+"/storage/v1/b/"+bucket, nil)
		if err != nil {
			return err
		}
		res, err := httpc.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, res.Body)
		return res.Body.Close()
	}
	if err := get(ctx); err != nil {
		t.Fatal(err)
	}

	outage(t, testenv.Storage)
	wantRefused(t, host)
	if err := get(ctx); err == nil {
		t.Fatal("a request on a connection opened before the outage succeeded")
	}
	err := within(ctx, func(ctx context.Context) error {
		_, err := c.Storage.Bucket(bucket).Object("kept.txt").Attrs(ctx)
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("object attributes during the outage: %v, want connection refused", err)
	}

	restart(ctx, t, testenv.Storage)
	r, err := c.Storage.Bucket(bucket).Object("kept.txt").NewReader(ctx)
	if err != nil {
		t.Fatalf("read after the restart, with the client built before: %v", err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, content) {
		t.Fatalf("read back %q, %v; want %q", back, err, content)
	}
	if err := upload(ctx, c.Storage, bucket, "after.txt", content); err != nil {
		t.Fatalf("upload after the restart: %v", err)
	}
}

func pubSubOutageKeepsMessagesAndAcks(t *testing.T, p config.Platform, c *testenv.Clients) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	topic := "projects/" + p.Project + "/topics/outage"
	sub := "projects/" + p.Project + "/subscriptions/outage"
	if _, err := c.PubSub.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PubSub.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, AckDeadlineSeconds: 10,
	}); err != nil {
		t.Fatal(err)
	}
	pub := c.PubSub.Publisher(topic)
	defer pub.Stop()
	publish := func(data string) string {
		t.Helper()
		id, err := pub.Publish(ctx, &pubsub.Message{Data: []byte(data)}).Get(ctx)
		if err != nil {
			t.Fatalf("publish %s: %v", data, err)
		}
		return id
	}

	// acked is acknowledged before the outage; inflight is pulled and not
	// acknowledged (its deadline cut to 2 s, so the test need not wait out
	// the 10 s minimum); waiting is never pulled before the outage.
	publish("acked")
	publish("inflight")
	pulled := map[string]string{} // data -> ack id
	eventually(ctx, t, "pull acked and inflight", func() bool {
		res, err := c.PubSub.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 10})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.GetReceivedMessages() {
			pulled[string(m.GetMessage().GetData())] = m.GetAckId()
		}
		return len(pulled) == 2
	})
	if err := c.PubSub.SubscriptionAdminClient.Acknowledge(ctx, &pubsubpb.AcknowledgeRequest{
		Subscription: sub, AckIds: []string{pulled["acked"]},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.PubSub.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
		Subscription: sub, AckIds: []string{pulled["inflight"]}, AckDeadlineSeconds: 2,
	}); err != nil {
		t.Fatal(err)
	}
	publish("waiting")
	raw := pubsubpb.NewPublisherClient(grpcConn(t, p.Emulators.PubSub))
	if _, err := raw.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: topic}); err != nil {
		t.Fatal(err)
	}

	outage(t, testenv.PubSub)
	wantRefused(t, p.Emulators.PubSub)
	if _, err := raw.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: topic}); status.Code(err) != codes.Unavailable {
		t.Fatalf("get topic on a connection opened before the outage: %v, want UNAVAILABLE", err)
	}
	err := within(ctx, func(ctx context.Context) error {
		_, err := c.PubSub.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: sub})
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("get subscription during the outage: %v, want the deadline (the client retries UNAVAILABLE)", err)
	}

	restart(ctx, t, testenv.PubSub)
	publish("after")
	var mu sync.Mutex
	got := map[string]int{}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	err = c.PubSub.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got[string(m.Data)]++
		if got["inflight"] > 0 && got["waiting"] > 0 && got["after"] > 0 {
			stop()
		}
	})
	if err != nil {
		t.Fatalf("receive after the restart, with the client built before: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got["inflight"] == 0 || got["waiting"] == 0 || got["after"] == 0 {
		t.Fatalf("received %v; want inflight, waiting and after (%v)", got, ctx.Err())
	}
	if got["acked"] != 0 {
		t.Errorf("a message acknowledged before the outage was delivered again: %v", got)
	}
}

func firestoreOutageKeepsDocuments(t *testing.T, p config.Platform, c *testenv.Clients) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	doc := c.Firestore.Doc("outage/kept")
	if _, err := doc.Set(ctx, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	raw := pb.NewFirestoreClient(grpcConn(t, p.Emulators.Firestore))
	get := &pb.GetDocumentRequest{Name: "projects/" + p.Project + "/databases/(default)/documents/outage/kept"}
	if _, err := raw.GetDocument(ctx, get); err != nil {
		t.Fatal(err)
	}

	outage(t, testenv.Firestore)
	wantRefused(t, p.Emulators.Firestore)
	if _, err := raw.GetDocument(ctx, get); status.Code(err) != codes.Unavailable {
		t.Fatalf("get on a connection opened before the outage: %v, want UNAVAILABLE", err)
	}
	err := within(ctx, func(ctx context.Context) error {
		_, err := doc.Get(ctx)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) && status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("client get during the outage: %v, want the deadline (the client retries UNAVAILABLE)", err)
	}

	restart(ctx, t, testenv.Firestore)
	snap, err := doc.Get(ctx)
	if err != nil {
		t.Fatalf("get after the restart, with the client built before: %v", err)
	}
	if n := snap.Data()["n"]; n != int64(1) {
		t.Fatalf("n = %v after the restart, want 1", n)
	}
	if _, err := doc.Update(ctx, []firestore.Update{{Path: "n", Value: 2}}); err != nil {
		t.Fatalf("update after the restart: %v", err)
	}
}

func bigQueryOutageKeepsTables(t *testing.T, p config.Platform, c *testenv.Clients) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	table := c.BigQuery.Dataset(names.Dataset).Table(names.ResultsTable)
	before, err := table.Metadata(ctx)
	if err != nil {
		t.Fatal(err)
	}

	outage(t, testenv.BigQuery)
	wantRefused(t, p.Emulators.BigQuery)
	err = within(ctx, func(ctx context.Context) error {
		_, err := table.Metadata(ctx)
		return err
	})
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("table metadata during the outage: %v, want connection refused", err)
	}

	restart(ctx, t, testenv.BigQuery)
	after, err := table.Metadata(ctx)
	if err != nil {
		t.Fatalf("table metadata after the restart, with the client built before: %v", err)
	}
	if len(after.Schema) != len(before.Schema) || after.TimePartitioning == nil {
		t.Errorf("table after the restart: %d columns, partitioning %v; want %d columns, partitioned", len(after.Schema), after.TimePartitioning, len(before.Schema))
	}
}

// uploadDuringPubSubOutageIsNotified: an object finalized while Pub/Sub
// is down is notified on process-raw once Pub/Sub is back. The outage lasts
// until the router has failed to publish the event at least once, so its
// nack and redelivery path is exercised.
func uploadDuringPubSubOutageIsNotified(t *testing.T, p config.Platform, c *testenv.Clients) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	failures := env.RouterPublishFailures()

	outage(t, testenv.PubSub)
	name := "robot=R001/date=2026-11-21/during-outage.csv"
	w := c.Storage.Bucket(names.RawBucket(p.Prefix)).Object(name).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.Write([]byte("sample_id,patient_id\nS1,P1\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("upload during the Pub/Sub outage: %v", err)
	}
	eventually(ctx, t, "the router fails to publish", func() bool { return env.RouterPublishFailures() > failures })

	restart(ctx, t, testenv.PubSub)
	msgs := receive(ctx, t, c.PubSub, names.SubscriptionProcessRaw, 1)
	if len(msgs) != 1 {
		t.Fatalf("got %d notifications after the restart, want 1 (%v)", len(msgs), ctx.Err())
	}
	if a := msgs[0].Attributes; a["objectId"] != name || a["eventType"] != testenv.EventFinalize {
		t.Errorf("notification attributes = %v, want OBJECT_FINALIZE of %s", a, name)
	}
}

func TestStopAndRestartAreIdempotent(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, s := range testenv.Services() {
		if err := env.Restart(ctx, s); err != nil {
			t.Errorf("restart a running %s: %v", s, err)
		}
		for range 2 {
			if err := env.Stop(ctx, s); err != nil {
				t.Errorf("stop %s: %v", s, err)
			}
		}
		for range 2 {
			if err := env.Restart(ctx, s); err != nil {
				t.Errorf("restart %s: %v", s, err)
			}
		}
	}
	if err := env.Stop(ctx, "spanner"); err == nil {
		t.Error("stop of an unknown emulator succeeded")
	}
}

func TestParseService(t *testing.T) {
	for _, s := range testenv.Services() {
		if got, err := testenv.ParseService(string(s)); err != nil || got != s {
			t.Errorf("ParseService(%q) = %q, %v", s, got, err)
		}
	}
	if _, err := testenv.ParseService("gcs"); err == nil {
		t.Error(`ParseService("gcs") succeeded`)
	}
}
