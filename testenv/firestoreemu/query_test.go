package firestoreemu_test

import (
	"context"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/genproto/googleapis/type/latlng"
	"google.golang.org/grpc/codes"
)

// seed writes docs (id -> data) into collection coll.
func seed(t *testing.T, c *firestore.Client, coll string, docs map[string]map[string]any) {
	t.Helper()
	err := c.RunTransaction(context.Background(), func(ctx context.Context, tx *firestore.Transaction) error {
		for id, d := range docs {
			if err := tx.Set(c.Collection(coll).Doc(id), d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("seed %s: %v", coll, err)
	}
}

// ids runs q and returns the document IDs in result order.
func ids(t *testing.T, q firestore.Query) []string {
	t.Helper()
	snaps := must(q.Documents(context.Background()).GetAll())(t)
	out := []string{}
	for _, s := range snaps {
		out = append(out, s.Ref.ID)
	}
	return out
}

func TestFieldFilters(t *testing.T) {
	c := newClient(t)
	seed(t, c, "f", map[string]map[string]any{
		"a": {"n": 1, "s": "x", "tags": []any{"red", "blue"}, "opt": nil, "m": map[string]any{"k": 1}},
		"b": {"n": 2.5, "s": "y", "tags": []any{"green"}, "opt": "set"},
		"c": {"n": 3, "s": "z", "tags": []any{}},
		"d": {"n": "3", "s": "x"},
		"e": {"n": nil, "s": "w"},
	})
	col := c.Collection("f")
	ref := func(id string) *firestore.DocumentRef { return col.Doc(id) }
	cases := []struct {
		name string
		q    firestore.Query
		want []string
	}{
		{name: "==", q: col.Where("n", "==", 1), want: []string{"a"}},
		{name: "== int matches double", q: col.Where("n", "==", 1.0), want: []string{"a"}},
		{name: "!= includes other types and null", q: col.Where("n", "!=", 1), want: []string{"b", "c", "d", "e"}},
		{name: "< only same type", q: col.Where("n", "<", 3), want: []string{"a", "b"}},
		{name: "<=", q: col.Where("n", "<=", 3), want: []string{"a", "b", "c"}},
		{name: ">", q: col.Where("n", ">", 1), want: []string{"b", "c"}},
		{name: ">=", q: col.Where("n", ">=", 2.5), want: []string{"b", "c"}},
		{name: "> string", q: col.Where("n", ">", ""), want: []string{"d"}},
		{name: "in", q: col.Where("s", "in", []any{"x", "z"}), want: []string{"a", "c", "d"}},
		{name: "not-in", q: col.Where("s", "not-in", []any{"x"}), want: []string{"b", "c", "e"}},
		{name: "not-in excludes null", q: col.Where("n", "not-in", []any{1}), want: []string{"b", "c", "d"}},
		{name: "array-contains", q: col.Where("tags", "array-contains", "red"), want: []string{"a"}},
		{name: "array-contains-any", q: col.Where("tags", "array-contains-any", []any{"green", "red"}), want: []string{"a", "b"}},
		{name: "is null", q: col.Where("opt", "==", nil), want: []string{"a"}},
		{name: "is not null", q: col.Where("opt", "!=", nil), want: []string{"b"}},
		{name: "nested field", q: col.Where("m.k", "==", 1), want: []string{"a"}},
		{name: "missing field never matches", q: col.Where("zzz", "!=", 1), want: []string{}},
		{name: "and", q: col.Where("s", "==", "x").Where("n", "==", 1), want: []string{"a"}},
		{name: "or", q: col.WhereEntity(firestore.OrFilter{Filters: []firestore.EntityFilter{
			firestore.PropertyFilter{Path: "n", Operator: "==", Value: 1},
			firestore.PropertyFilter{Path: "s", Operator: "==", Value: "w"},
		}}), want: []string{"a", "e"}},
		{name: "or of and", q: col.WhereEntity(firestore.OrFilter{Filters: []firestore.EntityFilter{
			firestore.AndFilter{Filters: []firestore.EntityFilter{
				firestore.PropertyFilter{Path: "s", Operator: "==", Value: "x"},
				firestore.PropertyFilter{Path: "n", Operator: "==", Value: "3"},
			}},
			firestore.PropertyFilter{Path: "n", Operator: "==", Value: 3},
		}}), want: []string{"c", "d"}},
		{name: "__name__ ==", q: col.Where(firestore.DocumentID, "==", ref("b")), want: []string{"b"}},
		{name: "__name__ in", q: col.Where(firestore.DocumentID, "in", []any{ref("a"), ref("c")}), want: []string{"a", "c"}},
		{name: "__name__ >", q: col.Where(firestore.DocumentID, ">", ref("b")), want: []string{"c", "d", "e"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(t, tc.q)
			slices.Sort(got)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNaNAndNullFilters(t *testing.T) {
	c := newClient(t)
	seed(t, c, "n", map[string]map[string]any{
		"nan": {"x": math.NaN()}, "one": {"x": 1}, "null": {"x": nil}, "str": {"x": "s"}, "none": {},
	})
	col := c.Collection("n")
	cases := []struct {
		name string
		q    firestore.Query
		want []string
	}{
		{name: "is nan", q: col.Where("x", "==", math.NaN()), want: []string{"nan"}},
		{name: "is not nan", q: col.Where("x", "!=", math.NaN()), want: []string{"null", "one", "str"}},
		{name: "is null", q: col.Where("x", "==", nil), want: []string{"null"}},
		{name: "is not null", q: col.Where("x", "!=", nil), want: []string{"nan", "one", "str"}},
		{name: "order by excludes missing", q: col.OrderBy("x", firestore.Asc), want: []string{"null", "nan", "one", "str"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(t, tc.q)
			if tc.name != "order by excludes missing" {
				slices.Sort(got)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCrossTypeOrdering(t *testing.T) {
	c := newClient(t)
	ts := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	// IDs are chosen so that name order differs from value order.
	docs := map[string]map[string]any{
		"k01": {"v": nil},
		"j02": {"v": false},
		"i03": {"v": true},
		"h04": {"v": math.NaN()},
		"g05": {"v": math.Inf(-1)},
		"f06": {"v": -1},
		"e07": {"v": 0.5},
		"d08": {"v": 1},
		"d09": {"v": 1.0}, // equal to 1: tie broken by name
		"c10": {"v": int64(math.MaxInt64)},
		"b11": {"v": ts},
		"a12": {"v": ""},
		"z13": {"v": "a"},
		"y14": {"v": []byte{0}},
		"x15": {"v": c.Doc("a/b")},
		"w16": {"v": &latlng.LatLng{Latitude: -10, Longitude: 0}},
		"v17": {"v": []any{}},
		"u18": {"v": []any{1}},
		"t19": {"v": map[string]any{}},
		"s20": {"v": map[string]any{"a": 1}},
	}
	seed(t, c, "o", docs)
	want := []string{"k01", "j02", "i03", "h04", "g05", "f06", "e07", "d08", "d09", "c10", "b11", "a12", "z13", "y14", "x15", "w16", "v17", "u18", "t19", "s20"}
	t.Run("ascending", func(t *testing.T) {
		if got := ids(t, c.Collection("o").OrderBy("v", firestore.Asc)); !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %v\nwant %v", got, want)
		}
	})
	t.Run("descending", func(t *testing.T) {
		rev := slices.Clone(want)
		slices.Reverse(rev) // __name__ tie-break follows the last direction
		if got := ids(t, c.Collection("o").OrderBy("v", firestore.Desc)); !reflect.DeepEqual(got, rev) {
			t.Fatalf("got  %v\nwant %v", got, rev)
		}
	})
}

func TestOrderByMultipleFields(t *testing.T) {
	c := newClient(t)
	seed(t, c, "m", map[string]map[string]any{
		"a": {"g": 1, "h": 1}, "b": {"g": 1, "h": 3}, "c": {"g": 0, "h": 2}, "d": {"g": 1, "h": 3}, "e": {"g": 0},
	})
	got := ids(t, c.Collection("m").OrderBy("g", firestore.Asc).OrderBy("h", firestore.Desc))
	want := []string{"c", "d", "b", "a"} // e lacks h; b/d tie broken by name descending
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	got = ids(t, c.Collection("m").OrderBy(firestore.DocumentID, firestore.Desc))
	if want := []string{"e", "d", "c", "b", "a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("by name desc: got %v, want %v", got, want)
	}
}

func TestImplicitOrderByInequalityField(t *testing.T) {
	c := newClient(t)
	seed(t, c, "i", map[string]map[string]any{"a": {"n": 3}, "b": {"n": 1}, "c": {"n": 2}})
	if got, want := ids(t, c.Collection("i").Where("n", ">", 0)), []string{"b", "c", "a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func seedNumbers(t *testing.T, c *firestore.Client) *firestore.CollectionRef {
	docs := map[string]map[string]any{}
	for i := range 10 {
		docs["d0"+itoa(i)] = map[string]any{"n": i, "g": i % 3}
	}
	seed(t, c, "nums", docs)
	return c.Collection("nums")
}

func TestLimitOffsetAndCursors(t *testing.T) {
	c := newClient(t)
	col := seedNumbers(t, c)
	// Queries are built per case: the client's LimitToLast rewrites the
	// orderings it shares with queries derived from the same value.
	byN := func() firestore.Query { return col.OrderBy("n", firestore.Asc) }
	snap4 := must(col.Doc("d04").Get(context.Background()))(t)
	cases := []struct {
		name string
		q    func() firestore.Query
		want []string
	}{
		{name: "limit", q: func() firestore.Query { return byN().Limit(3) }, want: []string{"d00", "d01", "d02"}},
		{name: "limit to last", q: func() firestore.Query { return byN().LimitToLast(3) }, want: []string{"d07", "d08", "d09"}},
		{name: "offset", q: func() firestore.Query { return byN().Offset(8) }, want: []string{"d08", "d09"}},
		{name: "offset and limit", q: func() firestore.Query { return byN().Offset(2).Limit(2) }, want: []string{"d02", "d03"}},
		{name: "start at end at", q: func() firestore.Query { return byN().StartAt(3).EndAt(5) }, want: []string{"d03", "d04", "d05"}},
		{name: "start after end before", q: func() firestore.Query { return byN().StartAfter(3).EndBefore(5) }, want: []string{"d04"}},
		{name: "descending start at", q: func() firestore.Query { return col.OrderBy("n", firestore.Desc).StartAt(5).Limit(2) }, want: []string{"d05", "d04"}},
		{name: "limit to last with cursors", q: func() firestore.Query { return byN().StartAt(2).EndBefore(8).LimitToLast(2) }, want: []string{"d06", "d07"}},
		{name: "snapshot cursor adds __name__", q: func() firestore.Query { return col.OrderBy("g", firestore.Asc).StartAfter(snap4) }, want: []string{"d07", "d02", "d05", "d08"}},
		{name: "end at snapshot", q: func() firestore.Query { return col.OrderBy("g", firestore.Asc).EndAt(snap4) }, want: []string{"d00", "d03", "d06", "d09", "d01", "d04"}},
		{name: "document id cursor", q: func() firestore.Query { return col.OrderBy(firestore.DocumentID, firestore.Asc).StartAfter("d07") }, want: []string{"d08", "d09"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids(t, tc.q()); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	col := seedNumbers(t, c)
	q := col.OrderBy("g", firestore.Desc).Limit(3)
	var got []string
	var last *firestore.DocumentSnapshot
	for page := 0; page < 10; page++ {
		pq := q
		if last != nil {
			pq = q.StartAfter(last)
		}
		snaps := must(pq.Documents(ctx).GetAll())(t)
		if len(snaps) == 0 {
			break
		}
		for _, s := range snaps {
			got = append(got, s.Ref.ID)
		}
		last = snaps[len(snaps)-1]
	}
	want := []string{"d08", "d05", "d02", "d07", "d04", "d01", "d09", "d06", "d03", "d00"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("pages: got %v, want %v", got, want)
	}
}

func TestCollectionGroup(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	for path, n := range map[string]int{"a/1/items/x": 1, "b/2/items/y": 2, "items/z": 3, "a/1/other/w": 4, "a/1/items/x/items/deep": 5} {
		must(c.Doc(path).Set(ctx, map[string]any{"n": n}))(t)
	}
	got := ids(t, c.CollectionGroup("items").Query)
	slices.Sort(got)
	if want := []string{"deep", "x", "y", "z"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("collection group: got %v, want %v", got, want)
	}
	got = ids(t, c.CollectionGroup("items").Where("n", ">=", 2).OrderBy("n", firestore.Desc))
	if want := []string{"deep", "z", "y"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("filtered collection group: got %v, want %v", got, want)
	}
}

func TestSelectProjection(t *testing.T) {
	c := newClient(t)
	seed(t, c, "p", map[string]map[string]any{"a": {"keep": 1, "drop": 2, "m": map[string]any{"in": 1, "out": 2}}})
	snaps := must(c.Collection("p").Select("keep", "m.in").Documents(context.Background()).GetAll())(t)
	want := map[string]any{"keep": int64(1), "m": map[string]any{"in": int64(1)}}
	if len(snaps) != 1 || !reflect.DeepEqual(snaps[0].Data(), want) {
		t.Fatalf("got %v, want %v", snaps, want)
	}
	refs := must(c.Collection("p").Select().Documents(context.Background()).GetAll())(t)
	if len(refs) != 1 || len(refs[0].Data()) != 0 {
		t.Fatalf("Select() should return names only, got %v", refs[0].Data())
	}
}

func TestAggregations(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	seed(t, c, "agg", map[string]map[string]any{
		"a": {"n": 1, "k": "x"}, "b": {"n": 2, "k": "x"}, "c": {"n": 4.5, "k": "y"}, "d": {"n": "text", "k": "x"}, "e": {"k": "x"},
	})
	col := c.Collection("agg")
	t.Run("count sum avg", func(t *testing.T) {
		res := must(col.NewAggregationQuery().WithCount("c").WithSum("n", "s").WithAvg("n", "a").Get(ctx))(t)
		if res["c"].(*pb.Value).GetIntegerValue() != 5 {
			t.Errorf("count = %v", res["c"])
		}
		if got := res["s"].(*pb.Value).GetDoubleValue(); got != 7.5 {
			t.Errorf("sum = %v, want 7.5", res["s"])
		}
		if got := res["a"].(*pb.Value).GetDoubleValue(); got != 2.5 {
			t.Errorf("avg = %v, want 2.5", res["a"])
		}
	})
	t.Run("integer sum and filtered", func(t *testing.T) {
		q := col.Where("k", "==", "x")
		res := must(q.NewAggregationQuery().WithCount("c").WithSum("n", "s").Get(ctx))(t)
		if got := res["c"].(*pb.Value).GetIntegerValue(); got != 4 {
			t.Errorf("count = %d, want 4", got)
		}
		if _, ok := res["s"].(*pb.Value).GetValueType().(*pb.Value_IntegerValue); !ok || res["s"].(*pb.Value).GetIntegerValue() != 3 {
			t.Errorf("sum = %v, want integer 3", res["s"])
		}
	})
	t.Run("avg of nothing is null and count respects limit", func(t *testing.T) {
		none := col.Where("k", "==", "none")
		res := must(none.NewAggregationQuery().WithAvg("n", "a").Get(ctx))(t)
		if _, ok := res["a"].(*pb.Value).GetValueType().(*pb.Value_NullValue); !ok {
			t.Errorf("avg of no values = %v, want null", res["a"])
		}
		limited := col.Limit(2)
		res = must(limited.NewAggregationQuery().WithCount("c").Get(ctx))(t)
		if got := res["c"].(*pb.Value).GetIntegerValue(); got != 2 {
			t.Errorf("count with limit 2 = %d", got)
		}
	})
}

func TestQueryValidationErrors(t *testing.T) {
	c := newClient(t)
	col := c.Collection("v")
	many := make([]any, 31)
	for i := range many {
		many[i] = i
	}
	cases := map[string]firestore.Query{
		"in with 31 values":     col.Where("a", "in", many),
		"not-in with 11 values": col.Where("a", "not-in", many[:11]),
		"in with non-array":     col.Where("a", "in", 3),
	}
	for name, q := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := q.Documents(context.Background()).GetAll()
			wantCode(t, err, codes.InvalidArgument)
		})
	}
}
