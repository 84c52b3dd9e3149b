package policy

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/labplatform/platform/lifecycle"
)

func TestShippedPoliciesAreValid(t *testing.T) {
	f, err := Parse(lifecycle.PoliciesJSON)
	if err != nil {
		t.Fatalf("shipped policies.json: %v", err)
	}
	if !reflect.DeepEqual(f, Default()) {
		t.Error("Default() differs from the parsed embedded file")
	}
	onDisk, err := Load("../policies.json")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f, onDisk) {
		t.Error("Load(policies.json) differs from the embedded file")
	}
	for _, role := range Roles() {
		b, ok := f.Buckets[role]
		if !ok {
			t.Errorf("no rules for bucket role %s", role)
			continue
		}
		for i, r := range b.Rules {
			if r.Description == "" {
				t.Errorf("%s rule %d has no description", role, i)
			}
		}
		// Every bucket cleans noncurrent versions and multipart uploads after 7 days.
		var noncurrent, mpu bool
		for _, r := range b.Rules {
			c := r.Condition
			if r.Action.Type == ActionDelete && c.DaysSinceNoncurrentTime != nil && *c.DaysSinceNoncurrentTime == 7 && c.State() == StateArchived {
				noncurrent = true
			}
			if r.Action.Type == ActionAbortIncompleteMultipartUpload && c.Age != nil && *c.Age == 7 {
				mpu = true
			}
		}
		if !noncurrent || !mpu {
			t.Errorf("%s: noncurrent cleanup %v, multipart abort %v; want both", role, noncurrent, mpu)
		}
	}
}

// TestShippedSchedule checks the defaults of the issue through Decide: the
// class or deletion each bucket's objects reach at each age.
func TestShippedSchedule(t *testing.T) {
	f := Default()
	type step struct {
		days     int
		from     Class
		enforcer bool
		want     string // "" no action, "Delete", or the class moved to
	}
	tests := map[string][]step{
		RoleRaw: {
			{days: 29, from: Standard, want: ""},
			{days: 30, from: Standard, want: "NEARLINE"},
			{days: 89, from: Nearline, want: ""},
			{days: 90, from: Nearline, want: "COLDLINE"},
			{days: 90, from: Standard, want: "COLDLINE"},
			{days: 399, from: Coldline, enforcer: true, want: ""},
			{days: 400, from: Coldline, enforcer: true, want: "Delete"},
			{days: 400, from: Coldline, enforcer: false, want: ""}, // GCS never deletes raw data
			{days: 5000, from: Coldline, enforcer: false, want: ""},
		},
		RoleCurated: {
			{days: 30, from: Standard, want: "NEARLINE"},
			{days: 90, from: Nearline, want: "COLDLINE"},
			{days: 364, from: Coldline, want: ""},
			{days: 365, from: Coldline, want: "ARCHIVE"},
			{days: 365, from: Standard, want: "ARCHIVE"},
			{days: 5000, from: Archive, enforcer: true, want: ""}, // kept
		},
		RoleQuarantine: {
			{days: 89, from: Standard, want: ""},
			{days: 90, from: Standard, want: "Delete"},
		},
		RoleModels: {
			{days: 5000, from: Standard, enforcer: true, want: ""},
		},
	}
	now := mustTime(t, "2026-06-01T00:00:00Z")
	for role, steps := range tests {
		for _, s := range steps {
			o := Object{Name: "robot=R001/date=2025-01-01/a.csv", Class: s.from, Live: true,
				Created: now.Add(-time24h(s.days))}
			r, ok := f.Buckets[role].Decide(o, now, s.enforcer)
			got := ""
			if ok {
				got = r.Action.Type
				if got == ActionSetStorageClass {
					got = string(r.Action.StorageClass)
				}
			}
			if got != s.want {
				t.Errorf("%s, %s object %d days old (enforcer %v): got %q, want %q", role, s.from, s.days, s.enforcer, got, s.want)
			}
		}
	}
	// A noncurrent version goes 7 days after it became noncurrent, in every bucket.
	for _, role := range Roles() {
		o := Object{Name: "x", Class: Standard, Created: now.Add(-time24h(8)), Noncurrent: now.Add(-time24h(7))}
		if r, ok := f.Buckets[role].Decide(o, now, false); !ok || r.Action.Type != ActionDelete {
			t.Errorf("%s: noncurrent version 7 days on: got %+v, %v; want Delete", role, r.Action, ok)
		}
		o.Noncurrent = now.Add(-time24h(6))
		if r, ok := f.Buckets[role].Decide(o, now, true); ok {
			t.Errorf("%s: noncurrent version 6 days on: got %+v, want no action", role, r.Action)
		}
	}
}

func TestParseIsStrict(t *testing.T) {
	valid := `{"version":1,"buckets":{"quarantine":{"rules":[{"action":{"type":"Delete"},"condition":{"age":90}}]}}}`
	if _, err := Parse([]byte(valid)); err != nil {
		t.Fatalf("valid file: %v", err)
	}
	tests := []struct {
		name, data, want string
	}{
		{name: "unknown top-level field", data: `{"version":1,"buckets":{},"extra":1}`, want: `unknown field "extra"`},
		{name: "unknown condition field (a typo)", data: strings.Replace(valid, `"age"`, `"age_days"`, 1), want: `unknown field "age_days"`},
		{name: "trailing data", data: valid + `{}`, want: "data after the top-level object"},
		{name: "not JSON", data: `version: 1`, want: "decode policy"},
		{name: "invalid content", data: strings.Replace(valid, `90`, `-1`, 1), want: "buckets.quarantine.rules[0]: age is negative (-1)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadNamesThePath(t *testing.T) {
	path := t.TempDir() + "/p.json"
	if err := os.WriteFile(path, []byte(`{"version":2}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "version 2 is not supported") {
		t.Fatalf("got %v, want an error naming %s and the version", err, path)
	}
	if _, err := Load(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: got %v, want os.ErrNotExist", err)
	}
}

func TestBucketName(t *testing.T) {
	for role, want := range map[string]string{
		RoleRaw: "lab-raw", RoleCurated: "lab-curated", RoleQuarantine: "lab-quarantine", RoleModels: "lab-models",
	} {
		got, err := BucketName("lab", role)
		if err != nil || got != want {
			t.Errorf("BucketName(lab, %s) = %q, %v; want %q", role, got, err, want)
		}
	}
	if _, err := BucketName("lab", "archive"); err == nil || !strings.Contains(err.Error(), `unknown role "archive"`) {
		t.Errorf("unknown role: got %v", err)
	}
	if _, err := BucketName("", RoleRaw); err == nil {
		t.Error("empty prefix: got no error")
	}
}
