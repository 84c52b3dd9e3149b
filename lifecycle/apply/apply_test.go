package apply

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/labplatform/platform/lifecycle/policy"
	"google.golang.org/api/option"
)

// fake-gcs-server does not keep a bucket's lifecycle configuration, so these
// tests stand a recording server in for the Storage JSON API: it serves
// GET /storage/v1/b/<bucket> from a table of buckets and records every
// PATCH, honouring ifMetagenerationMatch the way GCS does.

type fakeBucket struct {
	metageneration int64
	lifecycle      json.RawMessage // the bucket's "lifecycle" as the JSON API shows it; nil for none
}

type patch struct {
	bucket                string
	ifMetagenerationMatch string
	body                  []byte
}

type storageAPI struct {
	mu      sync.Mutex
	buckets map[string]*fakeBucket
	patches []patch
	gets    int
}

func (s *storageAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ok := strings.CutPrefix(r.URL.Path, "/storage/v1/b/")
	b := s.buckets[name]
	if !ok || b == nil {
		apiError(w, http.StatusNotFound, "The specified bucket does not exist.")
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.gets++
	case http.MethodPatch:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		match := r.URL.Query().Get("ifMetagenerationMatch")
		s.patches = append(s.patches, patch{bucket: name, ifMetagenerationMatch: match, body: body})
		if match != "" && match != strconv.FormatInt(b.metageneration, 10) {
			apiError(w, http.StatusPreconditionFailed, "At least one of the pre-conditions you specified did not hold.")
			return
		}
		var update struct {
			Lifecycle json.RawMessage `json:"lifecycle"`
		}
		if err := json.Unmarshal(body, &update); err != nil {
			apiError(w, http.StatusBadRequest, err.Error())
			return
		}
		b.lifecycle = update.Lifecycle
		b.metageneration++
	default:
		apiError(w, http.StatusMethodNotAllowed, r.Method)
		return
	}
	resource := map[string]any{"kind": "storage#bucket", "id": name, "name": name,
		"metageneration": strconv.FormatInt(b.metageneration, 10)}
	if b.lifecycle != nil {
		resource["lifecycle"] = b.lifecycle
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resource)
}

func apiError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q}]}}`, code, msg, msg)
}

func (s *storageAPI) recorded() []patch {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]patch(nil), s.patches...)
}

func (s *storageAPI) bucket(name string) fakeBucket {
	s.mu.Lock()
	defer s.mu.Unlock()
	return *s.buckets[name]
}

// newAPI starts a recording Storage API holding buckets and returns a
// storage client that talks to it.
func newAPI(t *testing.T, buckets map[string]*fakeBucket) (*storageAPI, *storage.Client) {
	t.Helper()
	api := &storageAPI{buckets: buckets}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Setenv("STORAGE_EMULATOR_HOST", "")
	client, err := storage.NewClient(context.Background(),
		option.WithEndpoint(srv.URL+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	return api, client
}

// Rules of the shipped policy, as the JSON API writes them.
const (
	nearline30  = `{"action":{"type":"SetStorageClass","storageClass":"NEARLINE"},"condition":{"age":30,"isLive":true,"matchesStorageClass":["STANDARD"]}}`
	coldline90  = `{"action":{"type":"SetStorageClass","storageClass":"COLDLINE"},"condition":{"age":90,"isLive":true,"matchesStorageClass":["STANDARD","NEARLINE"]}}`
	archive365  = `{"action":{"type":"SetStorageClass","storageClass":"ARCHIVE"},"condition":{"age":365,"isLive":true,"matchesStorageClass":["STANDARD","NEARLINE","COLDLINE"]}}`
	noncurrent7 = `{"action":{"type":"Delete"},"condition":{"daysSinceNoncurrentTime":7,"isLive":false}}`
	abort7      = `{"action":{"type":"AbortIncompleteMultipartUpload"},"condition":{"age":7}}`
	delete90    = `{"action":{"type":"Delete"},"condition":{"age":90,"isLive":true}}`
	delete30    = `{"action":{"type":"Delete"},"condition":{"age":30,"isLive":true}}`
)

func lifecycleJSON(rules ...string) json.RawMessage {
	return json.RawMessage(`{"rule":[` + strings.Join(rules, ",") + `]}`)
}

// mixedBuckets holds one bucket per role of the shipped policy: raw in sync
// (rules and class lists in another order), curated without lifecycle,
// quarantine with a rule changed, models with a rule twice.
func mixedBuckets() map[string]*fakeBucket {
	return map[string]*fakeBucket{
		"lab-raw": {metageneration: 3, lifecycle: lifecycleJSON(abort7, noncurrent7,
			`{"action":{"type":"SetStorageClass","storageClass":"COLDLINE"},"condition":{"age":90,"isLive":true,"matchesStorageClass":["NEARLINE","STANDARD"]}}`,
			nearline30)},
		"lab-curated":    {metageneration: 1},
		"lab-quarantine": {metageneration: 7, lifecycle: lifecycleJSON(delete30, noncurrent7, abort7)},
		"lab-models":     {metageneration: 2, lifecycle: lifecycleJSON(noncurrent7, abort7, abort7)},
	}
}

func TestDesiredConvertsTheNativeRules(t *testing.T) {
	got := Desired(policy.Default().Buckets[policy.RoleRaw])
	want := storage.Lifecycle{Rules: []storage.LifecycleRule{
		{
			Action:    storage.LifecycleAction{Type: storage.SetStorageClassAction, StorageClass: "NEARLINE"},
			Condition: storage.LifecycleCondition{AgeInDays: 30, MatchesStorageClasses: []string{"STANDARD"}, Liveness: storage.Live},
		},
		{
			Action:    storage.LifecycleAction{Type: storage.SetStorageClassAction, StorageClass: "COLDLINE"},
			Condition: storage.LifecycleCondition{AgeInDays: 90, MatchesStorageClasses: []string{"STANDARD", "NEARLINE"}, Liveness: storage.Live},
		},
		// The 400-day delete is enforcer-only: never in GCS.
		{
			Action:    storage.LifecycleAction{Type: storage.DeleteAction},
			Condition: storage.LifecycleCondition{DaysSinceNoncurrentTime: 7, Liveness: storage.Archived},
		},
		{
			Action:    storage.LifecycleAction{Type: storage.AbortIncompleteMPUAction},
			Condition: storage.LifecycleCondition{AgeInDays: 7, Liveness: storage.LiveAndArchived},
		},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Desired(raw):\n got %+v\nwant %+v", got, want)
	}

	// Every other condition field, age 0 and the with_state values.
	zero, three := 0, 3
	b := policy.Bucket{Rules: []policy.Rule{
		{Action: policy.Action{Type: policy.ActionDelete}, Condition: policy.Condition{Age: &zero, MatchesPrefix: []string{"tmp/"},
			MatchesSuffix: []string{".part"}, WithState: policy.StateAny}},
		{Action: policy.Action{Type: policy.ActionDelete}, Condition: policy.Condition{DaysSinceCustomTime: &three, NumNewerVersions: &three,
			WithState: policy.StateArchived}},
		{Action: policy.Action{Type: policy.ActionDelete}, Condition: policy.Condition{Age: &three}, EnforcerOnly: true},
	}}
	want = storage.Lifecycle{Rules: []storage.LifecycleRule{
		{
			Action: storage.LifecycleAction{Type: storage.DeleteAction},
			Condition: storage.LifecycleCondition{AllObjects: true, MatchesPrefix: []string{"tmp/"}, MatchesSuffix: []string{".part"},
				Liveness: storage.LiveAndArchived},
		},
		{
			Action:    storage.LifecycleAction{Type: storage.DeleteAction},
			Condition: storage.LifecycleCondition{DaysSinceCustomTime: 3, NumNewerVersions: 3, Liveness: storage.Archived},
		},
	}}
	if got := Desired(b); !reflect.DeepEqual(got, want) {
		t.Errorf("Desired(other fields):\n got %+v\nwant %+v", got, want)
	}
}

func TestPlanComparesEachBucket(t *testing.T) {
	api, client := newAPI(t, mixedBuckets())
	plans, err := Plan(context.Background(), client, policy.Default(), "lab")
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		Bucket, Role   string
		Metageneration int64
		Current        int
		InSync         bool
		Changes        []string
	}
	var got []summary
	for _, p := range plans {
		got = append(got, summary{p.Bucket, p.Role, p.Metageneration, len(p.Current.Rules), p.InSync, p.Changes})
	}
	want := []summary{
		{"lab-raw", "raw", 3, 4, true, nil},
		{"lab-curated", "curated", 1, 0, false, []string{
			"+ SetStorageClass NEARLINE when age >= 30 days, class in [STANDARD], live only",
			"+ SetStorageClass COLDLINE when age >= 90 days, class in [STANDARD NEARLINE], live only",
			"+ SetStorageClass ARCHIVE when age >= 365 days, class in [STANDARD NEARLINE COLDLINE], live only",
			"+ Delete when days since noncurrent >= 7, noncurrent only",
			"+ AbortIncompleteMultipartUpload when age >= 7 days",
		}},
		{"lab-quarantine", "quarantine", 7, 3, false, []string{
			"- Delete when age >= 30 days, live only",
			"+ Delete when age >= 90 days, live only",
		}},
		{"lab-models", "models", 2, 3, false, []string{
			"- AbortIncompleteMultipartUpload when age >= 7 days",
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plans:\n got %+v\nwant %+v", got, want)
	}
	if n := len(api.recorded()); n != 0 {
		t.Errorf("Plan sent %d PATCH requests, want none", n)
	}

	var out bytes.Buffer
	if err := WriteText(&out, plans); err != nil {
		t.Fatal(err)
	}
	wantText := `lab-raw (raw): in sync, 4 rules (+1 enforcer-only rule left to lifecycle enforce)
lab-curated (curated): 5 changes
  + SetStorageClass NEARLINE when age >= 30 days, class in [STANDARD], live only
  + SetStorageClass COLDLINE when age >= 90 days, class in [STANDARD NEARLINE], live only
  + SetStorageClass ARCHIVE when age >= 365 days, class in [STANDARD NEARLINE COLDLINE], live only
  + Delete when days since noncurrent >= 7, noncurrent only
  + AbortIncompleteMultipartUpload when age >= 7 days
lab-quarantine (quarantine): 2 changes
  - Delete when age >= 30 days, live only
  + Delete when age >= 90 days, live only
lab-models (models): 1 change
  - AbortIncompleteMultipartUpload when age >= 7 days
3 of 4 buckets to change: 6 to add, 2 to remove
`
	if out.String() != wantText {
		t.Errorf("text:\n%s\nwant:\n%s", out.String(), wantText)
	}
}

// sameJSON reports whether two JSON documents are equal as values.
func sameJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("PATCH body %s: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func TestApplySendsTheDesiredLifecycle(t *testing.T) {
	ctx := context.Background()
	api, client := newAPI(t, mixedBuckets())
	plans, err := Plan(ctx, client, policy.Default(), "lab")
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, client, plans); err != nil {
		t.Fatal(err)
	}
	want := []struct{ bucket, match, body string }{
		{"lab-curated", "1", `{"lifecycle":{"rule":[` + strings.Join([]string{nearline30, coldline90, archive365, noncurrent7, abort7}, ",") + `]}}`},
		{"lab-quarantine", "7", `{"lifecycle":{"rule":[` + strings.Join([]string{delete90, noncurrent7, abort7}, ",") + `]}}`},
		{"lab-models", "2", `{"lifecycle":{"rule":[` + strings.Join([]string{noncurrent7, abort7}, ",") + `]}}`},
	}
	got := api.recorded()
	if len(got) != len(want) {
		t.Fatalf("got %d PATCH requests, want %d (none for the raw bucket, in sync): %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.bucket != w.bucket || g.ifMetagenerationMatch != w.match {
			t.Errorf("PATCH %d: bucket %s ifMetagenerationMatch %q; want %s %q", i, g.bucket, g.ifMetagenerationMatch, w.bucket, w.match)
		}
		if !sameJSON(t, g.body, w.body) {
			t.Errorf("PATCH %s body:\n got %s\nwant %s", g.bucket, g.body, w.body)
		}
	}

	// What GCS now holds reads back as in sync: conversion and comparison agree.
	again, err := Plan(ctx, client, policy.Default(), "lab")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range again {
		if !p.InSync {
			t.Errorf("%s after apply: %v", p.Bucket, p.Changes)
		}
	}
	if err := Apply(ctx, client, again); err != nil {
		t.Fatal(err)
	}
	if n := len(api.recorded()); n != len(want) {
		t.Errorf("applying an in-sync plan sent %d more PATCH requests", n-len(want))
	}
}

func TestApplyClearsABucketWithoutRules(t *testing.T) {
	ctx := context.Background()
	api, client := newAPI(t, map[string]*fakeBucket{"lab-models": {metageneration: 4, lifecycle: lifecycleJSON(delete30)}})
	f := &policy.File{Version: policy.Version, Buckets: map[string]policy.Bucket{policy.RoleModels: {}}}
	plans, err := Plan(ctx, client, f, "lab")
	if err != nil {
		t.Fatal(err)
	}
	if err := Apply(ctx, client, plans); err != nil {
		t.Fatal(err)
	}
	got := api.recorded()
	if len(got) != 1 || !sameJSON(t, got[0].body, `{"lifecycle":{"rule":[]}}`) {
		t.Fatalf("got PATCH requests %+v, want one clearing the rules", got)
	}
}

func TestApplyRefusesToOverwriteAConcurrentChange(t *testing.T) {
	ctx := context.Background()
	api, client := newAPI(t, mixedBuckets())
	plans, err := Plan(ctx, client, policy.Default(), "lab")
	if err != nil {
		t.Fatal(err)
	}
	// Someone changes the quarantine bucket between plan and apply.
	concurrent := lifecycleJSON(delete30)
	api.mu.Lock()
	api.buckets["lab-quarantine"].lifecycle = concurrent
	api.buckets["lab-quarantine"].metageneration++
	api.mu.Unlock()

	err = Apply(ctx, client, plans)
	if !errors.Is(err, ErrConcurrentChange) {
		t.Fatalf("got %v, want ErrConcurrentChange", err)
	}
	for _, part := range []string{"lab-quarantine", "metageneration is no longer 7", "run plan again"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not say %q", err, part)
		}
	}
	if strings.Contains(err.Error(), "lab-curated") || strings.Contains(err.Error(), "lab-models") {
		t.Errorf("error %q names buckets that were applied", err)
	}
	if got := api.bucket("lab-quarantine"); got.metageneration != 8 || string(got.lifecycle) != string(concurrent) {
		t.Errorf("quarantine bucket was overwritten: %+v", got)
	}
	// The other buckets were still applied.
	for _, name := range []string{"lab-curated", "lab-models"} {
		if got := api.bucket(name); got.lifecycle == nil || got.metageneration < 2 {
			t.Errorf("%s not applied: %+v", name, got)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("missing bucket", func(t *testing.T) {
		buckets := mixedBuckets()
		delete(buckets, "lab-curated")
		_, client := newAPI(t, buckets)
		_, err := Plan(ctx, client, policy.Default(), "lab")
		if !errors.Is(err, storage.ErrBucketNotExist) || !strings.Contains(err.Error(), "lab-curated") {
			t.Fatalf("got %v, want ErrBucketNotExist naming lab-curated", err)
		}
	})
	t.Run("invalid policy", func(t *testing.T) {
		api, client := newAPI(t, mixedBuckets())
		f := policy.Default()
		f.Buckets[policy.RoleRaw].Rules[2].EnforcerOnly = false // a requires_loaded delete GCS would run
		_, err := Plan(ctx, client, f, "lab")
		if err == nil || !strings.Contains(err.Error(), "buckets.raw.rules[2]: requires_loaded needs enforcer_only") {
			t.Fatalf("got %v, want the validation error", err)
		}
		if api.gets != 0 {
			t.Errorf("an invalid policy was planned: %d bucket reads", api.gets)
		}
	})
	t.Run("plan without metageneration", func(t *testing.T) {
		api, client := newAPI(t, mixedBuckets())
		err := Apply(ctx, client, []BucketPlan{{Bucket: "lab-raw", Role: "raw"}})
		if err == nil || !strings.Contains(err.Error(), "lab-raw: the plan has no metageneration") {
			t.Fatalf("got %v", err)
		}
		if n := len(api.recorded()); n != 0 {
			t.Errorf("sent %d PATCH requests without a precondition", n)
		}
	})
}

func TestDiffComparesMultisets(t *testing.T) {
	rule := func(age int64, classes ...string) storage.LifecycleRule {
		return storage.LifecycleRule{
			Action:    storage.LifecycleAction{Type: storage.SetStorageClassAction, StorageClass: "ARCHIVE"},
			Condition: storage.LifecycleCondition{AgeInDays: age, MatchesStorageClasses: classes, Liveness: storage.Live},
		}
	}
	a, b := rule(30, "STANDARD", "NEARLINE"), rule(60)
	aReordered := rule(30, "NEARLINE", "STANDARD")
	tests := []struct {
		name             string
		current, desired []storage.LifecycleRule
		want             []string
	}{
		{name: "same rules in another order", current: []storage.LifecycleRule{b, aReordered}, desired: []storage.LifecycleRule{a, b}},
		{name: "a rule twice against once", current: []storage.LifecycleRule{a, b, a}, desired: []storage.LifecycleRule{a, b},
			want: []string{"- SetStorageClass ARCHIVE when age >= 30 days, class in [STANDARD NEARLINE], live only"}},
		{name: "a rule once against twice", current: []storage.LifecycleRule{a}, desired: []storage.LifecycleRule{a, a},
			want: []string{"+ SetStorageClass ARCHIVE when age >= 30 days, class in [STANDARD NEARLINE], live only"}},
		{name: "liveness differs", current: []storage.LifecycleRule{{Action: b.Action, Condition: storage.LifecycleCondition{AgeInDays: 60}}},
			desired: []storage.LifecycleRule{b},
			want: []string{
				"- SetStorageClass ARCHIVE when age >= 60 days, live and noncurrent",
				"+ SetStorageClass ARCHIVE when age >= 60 days, live only",
			}},
		{name: "age 0 is not no age", current: []storage.LifecycleRule{{Action: b.Action, Condition: storage.LifecycleCondition{AllObjects: true, Liveness: storage.Live}}},
			desired: []storage.LifecycleRule{{Action: b.Action, Condition: storage.LifecycleCondition{MatchesPrefix: []string{"x/"}, Liveness: storage.Live}}},
			want: []string{
				`- SetStorageClass ARCHIVE when age >= 0 days, live only`,
				`+ SetStorageClass ARCHIVE when name starts with "x/", live only`,
			}},
		{name: "nothing against nothing", current: nil, desired: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Diff(storage.Lifecycle{Rules: tc.current}, storage.Lifecycle{Rules: tc.desired})
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
