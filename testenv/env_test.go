package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/civil"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/storage"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/contracts/schema"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// receive pulls from sub until want messages arrived or ctx ends, acking each.
func receive(ctx context.Context, t *testing.T, client *pubsub.Client, sub string, want int) []*pubsub.Message {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var got []*pubsub.Message
	err := client.Subscriber(sub).Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == want {
			cancel()
		}
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("receive from %s: %v", sub, err)
	}
	mu.Lock()
	defer mu.Unlock()
	return got
}

// TestRawUploadNotifiesProcessRaw proves the first chain: an object finalized
// in the raw bucket reaches the process-raw subscription as a GCS
// notification naming bucket, object and generation; objects in other
// buckets do not.
func TestRawUploadNotifiesProcessRaw(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	gcs, ps := c.Storage, c.PubSub

	content := []byte("sample_id,patient_id\nS1,P1\n")
	// An upload elsewhere first: it must not be notified on process-raw.
	if err := upload(ctx, gcs, names.CuratedBucket(p.Prefix), "results/other.parquet", content); err != nil {
		t.Fatal(err)
	}
	rawName := "robot=R001/date=2026-11-21/export-0001.csv"
	w := gcs.Bucket(names.RawBucket(p.Prefix)).Object(rawName).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.CRC32C = crc32.Checksum(content, crc32.MakeTable(crc32.Castagnoli))
	w.SendCRC32C = true
	w.Metadata = map[string]string{"robot_id": "R001"}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("upload %s: %v", rawName, err)
	}
	gen := w.Attrs().Generation

	msgs := receive(ctx, t, ps, names.SubscriptionProcessRaw, 1)
	if len(msgs) != 1 {
		t.Fatalf("got %d notifications, want 1", len(msgs))
	}
	a := msgs[0].Attributes
	if a["bucketId"] != names.RawBucket(p.Prefix) || a["objectId"] != rawName || a["objectGeneration"] != strconv.FormatInt(gen, 10) ||
		a["eventType"] != testenv.EventFinalize || a["payloadFormat"] != "JSON_API_V1" || a["notificationConfig"] == "" {
		t.Errorf("attributes = %v; want bucket %s, object %s, generation %d, OBJECT_FINALIZE", a, names.RawBucket(p.Prefix), rawName, gen)
	}
	var obj struct {
		Bucket     string            `json:"bucket"`
		Name       string            `json:"name"`
		Generation string            `json:"generation"`
		Size       string            `json:"size"`
		CRC32C     string            `json:"crc32c"`
		Metadata   map[string]string `json:"metadata"`
	}
	if err := json.Unmarshal(msgs[0].Data, &obj); err != nil {
		t.Fatalf("payload is not a JSON object resource: %v", err)
	}
	if obj.Bucket != names.RawBucket(p.Prefix) || obj.Name != rawName || obj.Generation != strconv.FormatInt(gen, 10) ||
		obj.Size != strconv.Itoa(len(content)) || obj.CRC32C == "" || obj.Metadata["robot_id"] != "R001" {
		t.Errorf("payload = %+v", obj)
	}

	r, err := gcs.Bucket(names.RawBucket(p.Prefix)).Object(rawName).Generation(gen).NewReader(ctx)
	if err != nil {
		t.Fatalf("read back %s: %v", rawName, err)
	}
	back, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(back, content) {
		t.Errorf("read back %q, %v; want %q", back, err, content)
	}

	// A retried upload of the same name is refused: no second object.
	w2 := gcs.Bucket(names.RawBucket(p.Prefix)).Object(rawName).If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w2.Write(content)
	if err := w2.Close(); err == nil {
		t.Error("second upload with ifGenerationMatch=0 succeeded")
	}
}

func upload(ctx context.Context, gcs *storage.Client, bucket, name string, data []byte) error {
	w := gcs.Bucket(bucket).Object(name).NewWriter(ctx)
	if _, err := w.Write(data); err != nil {
		w.Close()
		return fmt.Errorf("upload gs://%s/%s: %w", bucket, name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("upload gs://%s/%s: %w", bucket, name, err)
	}
	return nil
}

type row struct {
	sample, patient, test string
	value                 float64
	refLow                *float64
	collected             time.Time
	analyzed              *time.Time
}

// parquetOf writes rows as a curated Parquet file with the contracts schema.
func parquetOf(t *testing.T, rawName string, gen int64, rows []row) []byte {
	t.Helper()
	sc := schema.Arrow()
	b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
	defer b.Release()
	ingested := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for i, r := range rows {
		for c, col := range schema.Columns() {
			fb := b.Field(c)
			switch col.Name {
			case schema.SampleID:
				fb.(*array.StringBuilder).Append(r.sample)
			case schema.PatientID:
				fb.(*array.StringBuilder).Append(r.patient)
			case schema.RobotID:
				fb.(*array.StringBuilder).Append("R001")
			case schema.TestCode:
				fb.(*array.StringBuilder).Append(r.test)
			case schema.TestName, schema.Unit, schema.OriginalUnit, schema.Flag, schema.Status, schema.SchemaVersion, schema.SourceObject:
				fb.(*array.StringBuilder).Append(col.Name + "-" + r.sample)
			case schema.Value, schema.OriginalValue:
				fb.(*array.Float64Builder).Append(r.value)
			case schema.RefLow:
				if r.refLow == nil {
					fb.AppendNull()
				} else {
					fb.(*array.Float64Builder).Append(*r.refLow)
				}
			case schema.CollectedAt:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(r.collected.UnixMicro()))
			case schema.AnalyzedAt:
				if r.analyzed == nil {
					fb.AppendNull()
				} else {
					fb.(*array.TimestampBuilder).Append(arrow.Timestamp(r.analyzed.UnixMicro()))
				}
			case schema.IngestedAt:
				fb.(*array.TimestampBuilder).Append(arrow.Timestamp(ingested.UnixMicro()))
			case schema.SourceGeneration:
				fb.(*array.Int64Builder).Append(gen)
			case schema.SourceLine:
				fb.(*array.Int64Builder).Append(int64(i + 2))
			default:
				if col.Required {
					t.Fatalf("test writer does not fill required column %s", col.Name)
				}
				fb.AppendNull()
			}
		}
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	w, err := pqarrow.NewFileWriter(sc, &buf, props, pqarrow.DefaultWriterProps())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCuratedParquetLoadsIntoResults proves the second chain: Parquet written
// with the contracts schema into the curated bucket loads into lab.results
// with WRITE_TRUNCATE and is queryable with SQL, with the right row count and
// values; loading the day again replaces rather than adds.
func TestCuratedParquetLoadsIntoResults(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	gcs, bq := c.Storage, c.BigQuery

	day := civil.Date{Year: 2026, Month: 11, Day: 20}
	at := time.Date(2026, 11, 20, 8, 30, 15, 123456000, time.UTC)
	analyzed := at.Add(90 * time.Minute)
	low := 70.0
	rows := []row{
		{sample: "S1", patient: "P1", test: "2345-7", value: 99.5, refLow: &low, collected: at, analyzed: &analyzed},
		{sample: "S1", patient: "P1", test: "2160-0", value: 0.9, collected: at},
		{sample: "S2", patient: "P2", test: "2345-7", value: 250.25, refLow: &low, collected: at.Add(time.Hour)},
	}
	rawA, rawB := "robot=R001/date=2026-11-21/a.csv", "robot=R001/date=2026-11-21/b.csv"
	for _, f := range []struct {
		raw  string
		rows []row
	}{{raw: rawA, rows: rows[:2]}, {raw: rawB, rows: rows[2:]}} {
		obj, err := names.CuratedObject(f.raw, 1, day)
		if err != nil {
			t.Fatal(err)
		}
		if err := upload(ctx, gcs, names.CuratedBucket(p.Prefix), obj, parquetOf(t, f.raw, 1, f.rows)); err != nil {
			t.Fatal(err)
		}
	}

	load := func() {
		t.Helper()
		ref := bigquery.NewGCSReference("gs://" + names.CuratedBucket(p.Prefix) + "/" + names.CuratedDayPrefix(day) + "*")
		ref.SourceFormat = bigquery.Parquet
		ref.Schema = schema.BigQuery()
		loader := bq.Dataset(names.Dataset).Table(names.ResultsTable).LoaderFrom(ref)
		loader.WriteDisposition = bigquery.WriteTruncate
		job, err := loader.Run(ctx)
		if err != nil {
			t.Fatalf("load job: %v", err)
		}
		st, err := job.Wait(ctx)
		if err != nil {
			t.Fatalf("load job wait: %v", err)
		}
		if st.Err() != nil {
			t.Fatalf("load job failed: %v", st.Err())
		}
	}
	load()
	load() // WRITE_TRUNCATE: the second load replaces the first

	q := bq.Query(fmt.Sprintf(`SELECT sample_id, patient_id, test_code, value, ref_low, collected_at, analyzed_at, source_generation
		FROM %s.%s WHERE DATE(collected_at) = @day ORDER BY patient_id, test_code`, names.Dataset, names.ResultsTable))
	q.Parameters = []bigquery.QueryParameter{{Name: "day", Value: day}}
	it, err := q.Read(ctx)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	type got struct {
		SampleID   string                 `bigquery:"sample_id"`
		PatientID  string                 `bigquery:"patient_id"`
		TestCode   string                 `bigquery:"test_code"`
		Value      float64                `bigquery:"value"`
		RefLow     bigquery.NullFloat64   `bigquery:"ref_low"`
		Collected  time.Time              `bigquery:"collected_at"`
		Analyzed   bigquery.NullTimestamp `bigquery:"analyzed_at"`
		Generation int64                  `bigquery:"source_generation"`
	}
	var all []got
	for {
		var g got
		err := it.Next(&g)
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			t.Fatalf("read rows: %v", err)
		}
		all = append(all, g)
	}
	if len(all) != len(rows) {
		t.Fatalf("got %d rows, want %d: %+v", len(all), len(rows), all)
	}
	want := []row{rows[1], rows[0], rows[2]} // ORDER BY patient_id, test_code
	for i, w := range want {
		g := all[i]
		if g.SampleID != w.sample || g.PatientID != w.patient || g.TestCode != w.test || g.Value != w.value || g.Generation != 1 {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
		if !g.Collected.Equal(w.collected) {
			t.Errorf("row %d collected_at = %v, want %v", i, g.Collected, w.collected)
		}
		if g.RefLow.Valid != (w.refLow != nil) || (w.refLow != nil && g.RefLow.Float64 != *w.refLow) {
			t.Errorf("row %d ref_low = %v, want %v", i, g.RefLow, w.refLow)
		}
		if g.Analyzed.Valid != (w.analyzed != nil) || (w.analyzed != nil && !g.Analyzed.Timestamp.Equal(*w.analyzed)) {
			t.Errorf("row %d analyzed_at = %v, want %v", i, g.Analyzed, w.analyzed)
		}
	}
}

// TestNackedFiveTimesReachesDeadLetters proves the third chain: a message
// nacked MaxDeliveryAttempts times leaves process-raw for the dead-letter
// topic, where the hold subscription keeps it.
func TestNackedFiveTimesReachesDeadLetters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	ps := testenv.NewTestClients(t, p).PubSub
	pub := ps.Publisher(names.TopicRawObjects)
	defer pub.Stop()
	if _, err := pub.Publish(ctx, &pubsub.Message{Data: []byte("poison"), Attributes: map[string]string{"objectId": "poison.csv"}}).Get(ctx); err != nil {
		t.Fatal(err)
	}

	// Synchronous pull and an explicit nack (ack deadline 0), delivery by
	// delivery, so the count is exact.
	sub := "projects/" + p.Project + "/subscriptions/" + names.SubscriptionProcessRaw
	var attempts []int32
	for len(attempts) < names.MaxDeliveryAttempts+1 {
		resp, err := ps.SubscriptionAdminClient.Pull(ctx, &pubsubpb.PullRequest{Subscription: sub, MaxMessages: 1})
		if err != nil {
			t.Fatalf("pull: %v", err)
		}
		if len(resp.ReceivedMessages) == 0 {
			break // nothing left to deliver: the message has left the subscription
		}
		m := resp.ReceivedMessages[0]
		attempts = append(attempts, m.DeliveryAttempt)
		if err := ps.SubscriptionAdminClient.ModifyAckDeadline(ctx, &pubsubpb.ModifyAckDeadlineRequest{
			Subscription: sub, AckIds: []string{m.AckId}, AckDeadlineSeconds: 0,
		}); err != nil {
			t.Fatalf("nack: %v", err)
		}
	}
	if want := []int32{1, 2, 3, 4, 5}; fmt.Sprint(attempts) != fmt.Sprint(want) {
		t.Errorf("delivery attempts = %v, want %v", attempts, want)
	}
	dead := receive(ctx, t, ps, names.SubscriptionDeadLetters, 1)
	if len(dead) != 1 || string(dead[0].Data) != "poison" || dead[0].Attributes["objectId"] != "poison.csv" {
		t.Fatalf("dead letters = %v, want the poison message", dead)
	}
}

// TestFirestoreThroughContractsClient proves the Firestore slot: the client
// contracts builds from the platform's endpoint commits a transaction to the
// emulator and reads it back; another platform's project sees none of it.
func TestFirestoreThroughContractsClient(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	fs, err := gcp.NewFirestore(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	doc := fs.Collection(names.CollectionPatients).Doc("P1")
	err = fs.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return tx.Set(doc, map[string]any{"tests": map[string]any{"2345-7": map[string]any{"count": 1}}})
	})
	if err != nil {
		t.Fatalf("transaction: %v", err)
	}
	snap, err := doc.Get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := snap.DataAtPath([]string{"tests", "2345-7", "count"}); err != nil || n != int64(1) {
		t.Errorf("tests.2345-7.count = %v, %v; want 1", n, err)
	}
	other := env.NewTestPlatform(t)
	ofs, err := gcp.NewFirestore(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	defer ofs.Close()
	if _, err := ofs.Collection(names.CollectionPatients).Doc("P1").Get(ctx); status.Code(err) != codes.NotFound {
		t.Errorf("other platform reads P1: %v, want NotFound", err)
	}
}

func TestSecondStartIsRefused(t *testing.T) {
	_, err := testenv.Start(t.Context(), testenv.Options{})
	if err == nil {
		t.Fatal("a second Env started in the same process")
	}
}

func TestEnvironPointsAtEmulators(t *testing.T) {
	m := map[string]string{}
	for _, l := range env.Environ() {
		k, v, _ := cutEq(l)
		m[k] = v
	}
	p, err := config.Load(nil, func(k string) string { return m[k] })
	if err != nil {
		t.Fatal(err)
	}
	if p.Emulators != env.Platform.Emulators || p.Emulators.Firestore == "" || p.Emulators.PubSub == "" || p.Emulators.BigQuery == "" {
		t.Errorf("Environ gives %+v, want the env's emulators %+v", p.Emulators, env.Platform.Emulators)
	}
	for k, want := range map[string]string{
		config.EnvStorageEmulator: env.Platform.Emulators.Storage, config.EnvPubSubEmulator: env.Platform.Emulators.PubSub,
		config.EnvFirestoreEmu: env.Platform.Emulators.Firestore, config.EnvBigQueryEmulator: env.Platform.Emulators.BigQuery,
	} {
		if got := os.Getenv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func cutEq(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '=' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
