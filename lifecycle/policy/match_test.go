package policy

import (
	"testing"
	"time"

	"cloud.google.com/go/storage"
)

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func time24h(days int) time.Duration { return time.Duration(days) * 24 * time.Hour }

func TestMatches(t *testing.T) {
	now := mustTime(t, "2026-06-01T12:00:00Z")
	base := Object{Bucket: "b", Name: "results/date=2026-01-01/x.parquet", Class: Standard, Live: true,
		Created: now.Add(-time24h(30))}
	with := func(f func(o *Object)) Object { o := base; f(&o); return o }
	tests := []struct {
		name string
		c    Condition
		o    Object
		want bool
	}{
		{name: "age reached", c: Condition{Age: intp(30)}, o: base, want: true},
		{name: "age one second short", c: Condition{Age: intp(30)}, o: with(func(o *Object) { o.Created = now.Add(-time24h(30) + time.Second) }), want: false},
		{name: "age 0 holds at creation", c: Condition{Age: intp(0)}, o: with(func(o *Object) { o.Created = now }), want: true},
		{name: "created in the future", c: Condition{Age: intp(0)}, o: with(func(o *Object) { o.Created = now.Add(time.Hour) }), want: false},
		{name: "class matches", c: Condition{MatchesStorageClass: []Class{Nearline, Standard}}, o: base, want: true},
		{name: "class does not match", c: Condition{MatchesStorageClass: []Class{Nearline}}, o: base, want: false},
		{name: "prefix matches one of", c: Condition{MatchesPrefix: []string{"rows/", "results/"}}, o: base, want: true},
		{name: "prefix does not match", c: Condition{MatchesPrefix: []string{"rows/"}}, o: base, want: false},
		{name: "suffix matches", c: Condition{MatchesSuffix: []string{".csv", ".parquet"}}, o: base, want: true},
		{name: "suffix does not match", c: Condition{MatchesSuffix: []string{".csv"}}, o: base, want: false},
		{name: "custom time old enough", c: Condition{DaysSinceCustomTime: intp(10)},
			o: with(func(o *Object) { o.CustomTime = now.Add(-time24h(10)) }), want: true},
		{name: "custom time too recent", c: Condition{DaysSinceCustomTime: intp(10)},
			o: with(func(o *Object) { o.CustomTime = now.Add(-time24h(9)) }), want: false},
		{name: "no custom time", c: Condition{DaysSinceCustomTime: intp(1)}, o: base, want: false},
		{name: "live object, default state", c: Condition{Age: intp(1)}, o: base, want: true},
		{name: "noncurrent object, default state is live", c: Condition{Age: intp(1)},
			o: with(func(o *Object) { o.Live = false; o.Noncurrent = now }), want: false},
		{name: "archived state, live object", c: Condition{Age: intp(1), WithState: StateArchived}, o: base, want: false},
		{name: "any state, noncurrent object", c: Condition{Age: intp(1), WithState: StateAny},
			o: with(func(o *Object) { o.Live = false; o.Noncurrent = now }), want: true},
		{name: "noncurrent long enough", c: Condition{DaysSinceNoncurrentTime: intp(7), WithState: StateArchived},
			o: with(func(o *Object) { o.Live = false; o.Noncurrent = now.Add(-time24h(7)) }), want: true},
		{name: "noncurrent too recently", c: Condition{DaysSinceNoncurrentTime: intp(7), WithState: StateArchived},
			o: with(func(o *Object) { o.Live = false; o.Noncurrent = now.Add(-time24h(6)) }), want: false},
		{name: "newer versions enough", c: Condition{NumNewerVersions: intp(2), WithState: StateArchived},
			o: with(func(o *Object) { o.Live = false; o.Noncurrent = now; o.NewerVersions = 2 }), want: true},
		{name: "newer versions too few", c: Condition{NumNewerVersions: intp(2), WithState: StateArchived},
			o: with(func(o *Object) { o.Live = false; o.Noncurrent = now; o.NewerVersions = 1 }), want: false},
		{name: "all conditions must hold", c: Condition{Age: intp(30), MatchesSuffix: []string{".csv"}}, o: base, want: false},
		{name: "unknown state never matches", c: Condition{Age: intp(1), WithState: "DELETED"}, o: base, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Rule{Action: Action{Type: ActionDelete}, Condition: tc.c}).Matches(tc.o, now); got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDecidePrecedence(t *testing.T) {
	now := mustTime(t, "2026-06-01T00:00:00Z")
	old := func(class Class, days int) Object {
		return Object{Name: "a/b.csv", Class: class, Live: true, Created: now.Add(-time24h(days))}
	}
	enforced := del(Condition{Age: intp(50)})
	enforced.EnforcerOnly = true
	tests := []struct {
		name     string
		rules    []Rule
		o        Object
		enforcer bool
		want     int // index of the rule chosen, -1 none
	}{
		{
			name:  "delete wins over a colder transition listed first",
			rules: []Rule{set(Archive, Condition{Age: intp(10)}), del(Condition{Age: intp(20)})},
			o:     old(Standard, 30), want: 1,
		},
		{
			name:  "first matching delete",
			rules: []Rule{del(Condition{Age: intp(20)}), del(Condition{Age: intp(10)})},
			o:     old(Standard, 30), want: 0,
		},
		{
			name:  "coldest transition wins",
			rules: []Rule{set(Nearline, Condition{Age: intp(10)}), set(Archive, Condition{Age: intp(20)}), set(Coldline, Condition{Age: intp(5)})},
			o:     old(Standard, 30), want: 1,
		},
		{
			name:  "transition to the current class is no action",
			rules: []Rule{set(Nearline, Condition{Age: intp(10)})},
			o:     old(Nearline, 30), want: -1,
		},
		{
			name:  "transition to a warmer class is no action",
			rules: []Rule{set(Nearline, Condition{Age: intp(10)})},
			o:     old(Coldline, 30), want: -1,
		},
		{
			name:  "the colder of the remaining transitions",
			rules: []Rule{set(Nearline, Condition{Age: intp(10)}), set(Coldline, Condition{Age: intp(20)})},
			o:     old(Nearline, 30), want: 1,
		},
		{
			name:  "unmatched rules do nothing",
			rules: []Rule{set(Nearline, Condition{Age: intp(40)}), del(Condition{Age: intp(40)})},
			o:     old(Standard, 30), want: -1,
		},
		{
			name:  "enforcer-only rules left out for GCS",
			rules: []Rule{set(Nearline, Condition{Age: intp(10)}), enforced},
			o:     old(Standard, 60), enforcer: false, want: 0,
		},
		{
			name:  "enforcer-only rules count for the enforcer",
			rules: []Rule{set(Nearline, Condition{Age: intp(10)}), enforced},
			o:     old(Standard, 60), enforcer: true, want: 1,
		},
		{
			name:  "requires_loaded alone is enough to keep a rule from GCS",
			rules: []Rule{{Action: Action{Type: ActionDelete}, Condition: Condition{Age: intp(1)}, RequiresLoaded: true}},
			o:     old(Standard, 60), enforcer: false, want: -1,
		},
		{
			name:  "multipart abort is never an object action",
			rules: []Rule{{Action: Action{Type: ActionAbortIncompleteMultipartUpload}, Condition: Condition{Age: intp(1)}}},
			o:     old(Standard, 60), want: -1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := Bucket{Rules: tc.rules}
			got, ok := b.Decide(tc.o, now, tc.enforcer)
			if tc.want < 0 {
				if ok {
					t.Fatalf("got %+v, want no action", got)
				}
				return
			}
			if !ok {
				t.Fatalf("got no action, want rule %d", tc.want)
			}
			want := tc.rules[tc.want]
			if got.Action != want.Action || !sameCondition(got.Condition, want.Condition) || got.EnforcerOnly != want.EnforcerOnly {
				t.Fatalf("got %+v, want rule %d %+v", got, tc.want, want)
			}
		})
	}
}

func TestObjectFrom(t *testing.T) {
	created := mustTime(t, "2026-01-01T00:00:00Z")
	custom := mustTime(t, "2025-12-01T00:00:00Z")
	deleted := mustTime(t, "2026-02-01T00:00:00Z")
	got := ObjectFrom(&storage.ObjectAttrs{Bucket: "b", Name: "n", Generation: 7, Size: 100, StorageClass: "NEARLINE",
		Created: created, CustomTime: custom})
	want := Object{Bucket: "b", Name: "n", Generation: 7, Size: 100, Class: Nearline, Created: created, CustomTime: custom, Live: true}
	if got != want {
		t.Errorf("live object: got %+v, want %+v", got, want)
	}
	got = ObjectFrom(&storage.ObjectAttrs{Name: "n", Created: created, Deleted: deleted})
	if got.Live || !got.Noncurrent.Equal(deleted) || got.Class != Standard {
		t.Errorf("noncurrent object without a class: got %+v, want not live, noncurrent since %v, STANDARD", got, deleted)
	}
}
