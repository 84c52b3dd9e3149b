package dags_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dags"
)

// fakeLifecycle records its calls.
type fakeLifecycle struct {
	calls []string
	fail  string // the method that fails
}

func (f *fakeLifecycle) call(name, args string) error {
	f.calls = append(f.calls, name+"("+args+")")
	if f.fail == name {
		return errors.New(name + " broke")
	}
	return nil
}

func (f *fakeLifecycle) Apply(_ context.Context, dryRun bool) (string, error) {
	return "2 buckets changed", f.call("Apply", fmt.Sprint(dryRun))
}

func (f *fakeLifecycle) Enforce(_ context.Context, now time.Time, dryRun bool) (string, error) {
	return "3 objects deleted", f.call("Enforce", now.UTC().Format(time.RFC3339)+", "+fmt.Sprint(dryRun))
}

func (f *fakeLifecycle) Cost(_ context.Context, now time.Time) (string, error) {
	return "12.5 USD/month", f.call("Cost", now.UTC().Format(time.RFC3339))
}

// TestLifecycleCallsInOrder: apply, enforce, cost, with the interval end as
// "now" and the dry-run flag from the run parameter or the task context.
func TestLifecycleCallsInOrder(t *testing.T) {
	ctx := t.Context()
	start := time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)
	end := start.Add(24 * time.Hour)
	for _, tc := range []struct {
		name   string
		params map[string]string
		dry    bool
		fail   string
		want   []string
		states map[string]string
	}{
		{
			name: "scheduled",
			want: []string{"Apply(false)", "Enforce(2026-11-21T03:00:00Z, false)", "Cost(2026-11-21T03:00:00Z)"},
		},
		{
			name:   "dry run parameter",
			params: map[string]string{dags.ParamDryRun: "true"},
			want:   []string{"Apply(true)", "Enforce(2026-11-21T03:00:00Z, true)", "Cost(2026-11-21T03:00:00Z)"},
		},
		{
			name: "tasks test",
			dry:  true,
			want: []string{"Apply(true)", "Enforce(2026-11-21T03:00:00Z, true)", "Cost(2026-11-21T03:00:00Z)"},
		},
		{
			name:   "enforcer fails",
			fail:   "Enforce",
			want:   []string{"Apply(false)", "Enforce(2026-11-21T03:00:00Z, false)"},
			states: map[string]string{dags.TaskApplyPolicies: stateSuccess, dags.TaskEnforce: stateFailed, dags.TaskCostReport: stateUpstreamFailed},
		},
		{
			name:   "malformed dry run",
			params: map[string]string{dags.ParamDryRun: "maybe"},
			states: map[string]string{dags.TaskApplyPolicies: stateFailed, dags.TaskEnforce: stateUpstreamFailed},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeLifecycle{fail: tc.fail}
			g, err := dags.LifecycleDAG(dags.Deps{Lifecycle: fake})
			if err != nil {
				t.Fatal(err)
			}
			rc := runContext(dags.LifecycleID, start, end, end.Add(time.Minute), tc.params)
			rc.DryRun = tc.dry
			out := runDAG(t, ctx, g, rc)
			if tc.states == nil {
				allSucceed(t, out)
			} else {
				checkStates(t, out, tc.states)
			}
			if !slices.Equal(fake.calls, tc.want) {
				t.Errorf("calls %q, want %q", fake.calls, tc.want)
			}
			if tc.fail != "" {
				if err := out[dags.TaskEnforce].err; err == nil || !strings.Contains(err.Error(), "Enforce broke") {
					t.Errorf("enforce error %v does not carry the lifecycle error", err)
				}
			}
		})
	}
}

// TestPlatformIncludesLifecycleOnlyWhenGiven.
func TestPlatformIncludesLifecycleOnlyWhenGiven(t *testing.T) {
	t.Parallel()
	p := offlinePlatform(t)
	ids := func(d dags.Deps) []string {
		t.Helper()
		gs, err := dags.Platform(d)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range gs {
			out = append(out, g.ID)
		}
		return out
	}
	if got := ids(p.deps); !slices.Equal(got, []string{"bq_load", "quality"}) {
		t.Errorf("without lifecycle: %v", got)
	}
	d := p.deps
	d.Lifecycle = &fakeLifecycle{}
	if got := ids(d); !slices.Equal(got, []string{"bq_load", "quality", "lifecycle"}) {
		t.Errorf("with lifecycle: %v", got)
	}
	if _, err := dags.LifecycleDAG(dags.Deps{}); err == nil {
		t.Error("LifecycleDAG without a Lifecycle: no error")
	}
}
