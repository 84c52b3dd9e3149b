package stack

import (
	"context"
	"os"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

// The stacks of these tests run on a Pub/Sub that honours retry policies,
// as GCP does: a worker's nack during an outage waits out its backoff.
func TestMain(m *testing.M) {
	os.Exit(testenv.Run(m, &env, testenv.Options{PubSubRetryBackoff: true}))
}

// TestReplayUnfinished stores three raw objects, one with a done lineage
// document, one still processing and one with none, and checks that the
// notifications of the last two, and only those, reach process-raw again.
func TestReplayUnfinished(t *testing.T) {
	ctx := t.Context()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	gens := map[string]int64{}
	for _, name := range []string{
		"robot=R001/date=2026-11-22/R001_20261122T080000_000001.csv",
		"robot=R001/date=2026-11-22/R001_20261122T080100_000002.csv",
		"robot=R002/date=2026-11-22/R002_20261122T080000_000001.csv",
	} {
		w := c.Storage.Bucket(names.RawBucket(p.Prefix)).Object(name).NewWriter(ctx)
		if _, err := w.Write([]byte("header\n")); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		gens[name] = w.Attrs().Generation
	}
	// The storage emulator notified process-raw of each upload: drain those
	// first, so what arrives later is the replay.
	sub := c.PubSub.Subscriber(names.SubscriptionProcessRaw)
	receive(t, sub, 3)

	for name, status := range map[string]string{
		"robot=R001/date=2026-11-22/R001_20261122T080000_000001.csv": lineage.StatusDone,
		"robot=R001/date=2026-11-22/R001_20261122T080100_000002.csv": lineage.StatusProcessing,
	} {
		id, err := names.RawID(name, gens[name])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(ctx, lineage.Ingestion{RawID: id, Object: name, Status: status}); err != nil {
			t.Fatal(err)
		}
	}
	s := &Stack{platform: p, storage: c.Storage, firestore: c.Firestore}
	n, err := s.replayUnfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("replayed %d notifications, want 2", n)
	}
	got := receive(t, sub, 2)
	want := map[string]bool{
		"robot=R001/date=2026-11-22/R001_20261122T080100_000002.csv": true,
		"robot=R002/date=2026-11-22/R002_20261122T080000_000001.csv": true,
	}
	for _, m := range got {
		obj := m.Attributes["objectId"]
		if !want[obj] || m.Attributes["eventType"] != "OBJECT_FINALIZE" || m.Attributes["bucketId"] != names.RawBucket(p.Prefix) {
			t.Errorf("replayed %v", m.Attributes)
		}
		delete(want, obj)
	}
	if len(want) > 0 {
		t.Errorf("not replayed: %v", want)
	}
}

// receive pulls n messages and acknowledges them.
func receive(t *testing.T, sub *pubsub.Subscriber, n int) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	msgs := make(chan *pubsub.Message, n+10)
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		msgs <- m
		if len(msgs) >= n {
			cancel()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	close(msgs)
	var out []*pubsub.Message
	for m := range msgs {
		out = append(out, m)
	}
	if len(out) != n {
		t.Fatalf("received %d messages, want %d", len(out), n)
	}
	return out
}
