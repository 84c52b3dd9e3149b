package firestoreemu_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/iterator"
	"google.golang.org/genproto/googleapis/type/latlng"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestSetGetRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	data := map[string]any{
		"s": "text", "i": int64(42), "f": 2.5, "b": true, "n": nil, "t": ts,
		"bytes": []byte{1, 2}, "geo": &latlng.LatLng{Latitude: 1, Longitude: 2},
		"arr": []any{int64(1), "a"}, "m": map[string]any{"x": int64(1), "2345-7": "odd key"},
		"ref": c.Doc("other/doc"),
	}
	doc := c.Doc("things/one")
	wr := must(doc.Set(ctx, data))(t)
	snap := must(doc.Get(ctx))(t)
	if !snap.CreateTime.Equal(wr.UpdateTime) || !snap.UpdateTime.Equal(wr.UpdateTime) {
		t.Errorf("times: create %v update %v, write result %v", snap.CreateTime, snap.UpdateTime, wr.UpdateTime)
	}
	got := snap.Data()
	if got["ref"].(*firestore.DocumentRef).Path != c.Doc("other/doc").Path {
		t.Errorf("ref = %v", got["ref"])
	}
	if g := got["geo"].(*latlng.LatLng); g.GetLatitude() != 1 || g.GetLongitude() != 2 {
		t.Errorf("geo = %v", g)
	}
	for _, k := range []string{"ref", "geo"} {
		delete(got, k)
		delete(data, k)
	}
	if !reflect.DeepEqual(got, data) {
		t.Errorf("round trip:\n got %#v\nwant %#v", got, data)
	}
}

func TestCreateTimeKeptUpdateTimeAdvances(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	first := must(doc.Create(ctx, map[string]any{"v": 1}))(t)
	second := must(doc.Set(ctx, map[string]any{"v": 2}))(t)
	if !second.UpdateTime.After(first.UpdateTime) {
		t.Fatalf("update time did not advance: %v then %v", first.UpdateTime, second.UpdateTime)
	}
	snap := must(doc.Get(ctx))(t)
	if !snap.CreateTime.Equal(first.UpdateTime) {
		t.Errorf("create time %v, want %v", snap.CreateTime, first.UpdateTime)
	}
	// A write that changes nothing keeps update_time, like Firestore.
	third := must(doc.Set(ctx, map[string]any{"v": 2}))(t)
	if !third.UpdateTime.Equal(second.UpdateTime) {
		t.Errorf("no-op write moved update time %v -> %v", second.UpdateTime, third.UpdateTime)
	}
}

func TestCreateExistingIsAlreadyExists(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	must(doc.Create(ctx, map[string]any{"a": 1}))(t)
	_, err := doc.Create(ctx, map[string]any{"a": 2})
	wantCode(t, err, codes.AlreadyExists)
}

func TestUpdateMissingIsNotFound(t *testing.T) {
	_, err := newClient(t).Doc("c/missing").Update(context.Background(), []firestore.Update{{Path: "a", Value: 1}})
	wantCode(t, err, codes.NotFound)
}

func TestGetMissingIsNotFound(t *testing.T) {
	_, err := newClient(t).Doc("c/missing").Get(context.Background())
	wantCode(t, err, codes.NotFound)
}

func TestSetMerge(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	must(doc.Set(ctx, map[string]any{"a": 1, "m": map[string]any{"x": 1, "y": 2}, "keep": true}))(t)
	must(doc.Set(ctx, map[string]any{"a": 10, "m": map[string]any{"y": 20, "z": 30}}, firestore.MergeAll))(t)
	must(doc.Set(ctx, map[string]any{"m": map[string]any{"x": 100, "ignored": 1}}, firestore.Merge(firestore.FieldPath{"m", "x"})))(t)
	got := must(doc.Get(ctx))(t).Data()
	want := map[string]any{"a": int64(10), "keep": true, "m": map[string]any{"x": int64(100), "y": int64(20), "z": int64(30)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUpdateFieldPaths(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	must(doc.Set(ctx, map[string]any{"a": 1, "gone": 1, "m": map[string]any{"2345-7": 1, "other": 2, "a.b": 3}}))(t)
	must(doc.Update(ctx, []firestore.Update{
		{FieldPath: firestore.FieldPath{"m", "2345-7"}, Value: 99},
		{FieldPath: firestore.FieldPath{"m", "a.b"}, Value: "dotted"},
		{Path: "n.deep.er", Value: "new"},
		{Path: "gone", Value: firestore.Delete},
	}))(t)
	got := must(doc.Get(ctx))(t).Data()
	want := map[string]any{
		"a": int64(1),
		"m": map[string]any{"2345-7": int64(99), "other": int64(2), "a.b": "dotted"},
		"n": map[string]any{"deep": map[string]any{"er": "new"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	must(doc.Set(ctx, map[string]any{"a": 1}))(t)
	must(doc.Delete(ctx))(t)
	_, err := doc.Get(ctx)
	wantCode(t, err, codes.NotFound)
	// Deleting a missing document succeeds; with Exists it is NotFound.
	must(doc.Delete(ctx))(t)
	_, err = doc.Delete(ctx, firestore.Exists)
	wantCode(t, err, codes.NotFound)
}

func TestTransforms(t *testing.T) {
	ts0 := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		initial map[string]any
		update  any
		want    any
	}{
		{name: "increment int", initial: map[string]any{"v": 5}, update: firestore.Increment(3), want: int64(8)},
		{name: "increment double", initial: map[string]any{"v": 5}, update: firestore.Increment(0.5), want: 5.5},
		{name: "increment missing field", initial: map[string]any{}, update: firestore.Increment(7), want: int64(7)},
		{name: "increment non-number", initial: map[string]any{"v": "x"}, update: firestore.Increment(2), want: int64(2)},
		{name: "increment saturates", initial: map[string]any{"v": int64(math.MaxInt64 - 1)}, update: firestore.Increment(10), want: int64(math.MaxInt64)},
		{name: "maximum keeps larger", initial: map[string]any{"v": 10}, update: firestore.FieldTransformMaximum(3), want: int64(10)},
		{name: "maximum takes larger", initial: map[string]any{"v": 1}, update: firestore.FieldTransformMaximum(3.5), want: 3.5},
		{name: "maximum with NaN", initial: map[string]any{"v": 1}, update: firestore.FieldTransformMaximum(math.NaN()), want: math.NaN()},
		{name: "minimum takes smaller", initial: map[string]any{"v": 10}, update: firestore.FieldTransformMinimum(-2), want: int64(-2)},
		{name: "minimum missing field", initial: map[string]any{}, update: firestore.FieldTransformMinimum(4), want: int64(4)},
		{name: "array union", initial: map[string]any{"v": []any{1, "a"}}, update: firestore.ArrayUnion(1.0, "b", "b"), want: []any{int64(1), "a", "b"}},
		{name: "array union non-array", initial: map[string]any{"v": ts0}, update: firestore.ArrayUnion("x"), want: []any{"x"}},
		{name: "array remove", initial: map[string]any{"v": []any{1, "a", 1, 2}}, update: firestore.ArrayRemove(1), want: []any{"a", int64(2)}},
		{name: "array remove missing", initial: map[string]any{}, update: firestore.ArrayRemove(1), want: []any(nil)},
	}
	c := newClient(t)
	ctx := context.Background()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := c.Collection("t").Doc(strings.ReplaceAll(tc.name, " ", "_"))
			must(doc.Set(ctx, tc.initial))(t)
			must(doc.Update(ctx, []firestore.Update{{Path: "v", Value: tc.update}}))(t)
			got := must(doc.Get(ctx))(t).Data()["v"]
			if f, ok := tc.want.(float64); ok && math.IsNaN(f) {
				if g, ok := got.(float64); !ok || !math.IsNaN(g) {
					t.Fatalf("got %v, want NaN", got)
				}
				return
			}
			if w, ok := tc.want.([]any); ok && w == nil {
				if g, ok := got.([]any); !ok || len(g) != 0 {
					t.Fatalf("got %#v, want empty array", got)
				}
				return
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestServerTimestamp(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	wr := must(doc.Set(ctx, map[string]any{"at": firestore.ServerTimestamp, "m": map[string]any{"at": firestore.ServerTimestamp}}))(t)
	snap := must(doc.Get(ctx))(t)
	at := snap.Data()["at"].(time.Time)
	if !at.Equal(wr.UpdateTime) {
		t.Errorf("server timestamp %v, want commit time %v", at, wr.UpdateTime)
	}
	if nested := snap.Data()["m"].(map[string]any)["at"].(time.Time); !nested.Equal(at) {
		t.Errorf("nested server timestamp %v, want %v", nested, at)
	}
}

func TestUpdateTimePrecondition(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	wr := must(doc.Set(ctx, map[string]any{"v": 1}))(t)
	must(doc.Update(ctx, []firestore.Update{{Path: "v", Value: 2}}, firestore.LastUpdateTime(wr.UpdateTime)))(t)
	_, err := doc.Update(ctx, []firestore.Update{{Path: "v", Value: 3}}, firestore.LastUpdateTime(wr.UpdateTime))
	wantCode(t, err, codes.FailedPrecondition)
	_, err = doc.Delete(ctx, firestore.LastUpdateTime(wr.UpdateTime))
	wantCode(t, err, codes.FailedPrecondition)
	if v := must(doc.Get(ctx))(t).Data()["v"]; v != int64(2) {
		t.Errorf("v = %v, want 2", v)
	}
}

func TestCommitIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	must(c.Doc("c/existing").Set(ctx, map[string]any{"v": 1}))(t)
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return errors.Join(
			tx.Set(c.Doc("c/new1"), map[string]any{"v": 1}),
			tx.Update(c.Doc("c/existing"), []firestore.Update{{Path: "v", Value: 2}}),
			tx.Create(c.Doc("c/existing"), map[string]any{"v": 3}), // fails: exists
		)
	})
	wantCode(t, err, codes.AlreadyExists)
	_, err = c.Doc("c/new1").Get(ctx)
	wantCode(t, err, codes.NotFound) // not written by the failed commit
	if v := must(c.Doc("c/existing").Get(ctx))(t).Data()["v"]; v != int64(1) {
		t.Errorf("existing v = %v, want 1", v)
	}
}

func TestSameDocumentTwiceInOneCommit(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	doc := c.Doc("c/d")
	err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		return errors.Join(
			tx.Set(doc, map[string]any{"v": 1, "w": 1}),
			tx.Update(doc, []firestore.Update{{Path: "v", Value: firestore.Increment(5)}}),
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := must(doc.Get(ctx))(t).Data()
	if got["v"] != int64(6) || got["w"] != int64(1) {
		t.Errorf("got %v, want v=6 w=1", got)
	}
}

func TestDocumentSizeLimit(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/big")
	_, err := doc.Set(ctx, map[string]any{"blob": make([]byte, 1<<20)})
	wantCode(t, err, codes.InvalidArgument)
	must(doc.Set(ctx, map[string]any{"blob": make([]byte, 1<<20-200)}))(t)
}

func TestFieldCountLimit(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/wide")
	m := make(map[string]any, 20001)
	for i := range 20001 {
		m["f"+strings.Repeat("x", i%3)+itoa(i)] = true
	}
	_, err := doc.Set(ctx, m)
	wantCode(t, err, codes.InvalidArgument)
	delete(m, "f"+itoa(0))
	must(doc.Set(ctx, m))(t)
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

func TestInvalidNames(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	cases := map[string]*firestore.DocumentRef{
		"reserved document id":   c.Collection("c").Doc("__reserved__"),
		"reserved collection id": c.Collection("__c__").Doc("d"),
	}
	for name, ref := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ref.Set(ctx, map[string]any{"a": 1})
			wantCode(t, err, codes.InvalidArgument)
		})
	}
	t.Run("reserved field name", func(t *testing.T) {
		_, err := c.Doc("c/d").Set(ctx, map[string]any{"__x__": 1})
		wantCode(t, err, codes.InvalidArgument)
	})
}

func TestBulkWriterStatusPerWrite(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	must(c.Doc("c/exists").Set(ctx, map[string]any{"v": 1}))(t)
	bw := c.BulkWriter(ctx)
	okJob := must(bw.Create(c.Doc("c/fresh"), map[string]any{"v": 1}))(t)
	failJob := must(bw.Create(c.Doc("c/exists"), map[string]any{"v": 2}))(t)
	updJob := must(bw.Update(c.Doc("c/exists"+"2"), []firestore.Update{{Path: "v", Value: 1}}))(t)
	bw.End()
	if _, err := okJob.Results(); err != nil {
		t.Errorf("create fresh: %v", err)
	}
	_, err := failJob.Results()
	wantCode(t, err, codes.AlreadyExists)
	_, err = updJob.Results()
	wantCode(t, err, codes.NotFound)
	if _, err := c.Doc("c/fresh").Get(ctx); err != nil {
		t.Errorf("fresh not written: %v", err)
	}
}

func TestReadAtPastReadTime(t *testing.T) {
	ctx := context.Background()
	doc := newClient(t).Doc("c/d")
	wr := must(doc.Set(ctx, map[string]any{"v": 1}))(t)
	must(doc.Set(ctx, map[string]any{"v": 2}))(t)
	old := must(doc.WithReadOptions(firestore.ReadTime(wr.UpdateTime)).Get(ctx))(t)
	if v := old.Data()["v"]; v != int64(1) {
		t.Errorf("v at first write's time = %v, want 1", v)
	}
	_, err := doc.WithReadOptions(firestore.ReadTime(wr.UpdateTime.Add(-time.Microsecond))).Get(ctx)
	wantCode(t, err, codes.NotFound)
}

func TestListCollectionsAndDocumentRefs(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	must(c.Doc("a/1").Set(ctx, map[string]any{}))(t)
	must(c.Doc("b/1/sub/x").Set(ctx, map[string]any{}))(t) // b/1 itself is missing
	must(c.Doc("b/2").Set(ctx, map[string]any{}))(t)
	must(c.Doc("a/1/kids/k").Set(ctx, map[string]any{}))(t)
	must(c.Doc("a/1/pets/p").Set(ctx, map[string]any{}))(t)

	var ids []string
	it := c.Collections(ctx)
	for {
		cr, err := it.Next()
		if err == iterator.Done {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cr.ID)
	}
	if !reflect.DeepEqual(ids, []string{"a", "b"}) {
		t.Errorf("root collections = %v", ids)
	}
	sub := must(c.Doc("a/1").Collections(ctx).GetAll())(t)
	if len(sub) != 2 || sub[0].ID != "kids" || sub[1].ID != "pets" {
		t.Errorf("subcollections of a/1 = %v", sub)
	}
	refs := must(c.Collection("b").DocumentRefs(ctx).GetAll())(t)
	var names []string
	for _, r := range refs {
		names = append(names, r.ID)
	}
	if !reflect.DeepEqual(names, []string{"1", "2"}) {
		t.Errorf("document refs of b (with missing parents) = %v", names)
	}
}

func TestGetAllMissingAndFound(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	must(c.Doc("c/a").Set(ctx, map[string]any{"v": 1}))(t)
	snaps := must(c.GetAll(ctx, []*firestore.DocumentRef{c.Doc("c/a"), c.Doc("c/nope")}))(t)
	if !snaps[0].Exists() || snaps[1].Exists() {
		t.Errorf("exists = %v, %v; want true, false", snaps[0].Exists(), snaps[1].Exists())
	}
}

func TestOutOfRangeTimestampRejected(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	doc := c.Doc("c/ts")
	for _, tc := range []struct {
		name string
		ts   *timestamppb.Timestamp
	}{
		{name: "after year 9999", ts: &timestamppb.Timestamp{Seconds: 253402300800}},
		{name: "before year 1", ts: &timestamppb.Timestamp{Seconds: -62135596801}},
		{name: "negative nanos", ts: &timestamppb.Timestamp{Seconds: 1, Nanos: -5}},
		{name: "nanos of two seconds", ts: &timestamppb.Timestamp{Seconds: 1, Nanos: 2e9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := doc.Set(ctx, map[string]any{"t": tc.ts})
			wantCode(t, err, codes.InvalidArgument)
		})
	}
	last := time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
	must(doc.Set(ctx, map[string]any{"t": last}))(t)
	if got := must(doc.Get(ctx))(t).Data()["t"].(time.Time); !got.Equal(last) {
		t.Fatalf("t = %v, want %v", got, last)
	}
}
