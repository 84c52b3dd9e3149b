package scheduler

import (
	"testing"

	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/state"
)

func TestDecide(t *testing.T) {
	const (
		none = state.TaskNone
		q    = state.TaskQueued
		run  = state.TaskRunning
		ok   = state.TaskSuccess
		bad  = state.TaskFailed
		upf  = state.TaskUpstreamFailed
		skip = state.TaskSkipped
		rty  = state.TaskUpForRetry
	)
	tests := []struct {
		name string
		rule dag.TriggerRule
		up   []state.TaskState
		want state.TaskState
	}{
		{name: "root runs", rule: dag.AllSuccess, up: nil, want: q},
		{name: "all_success all ok", rule: dag.AllSuccess, up: []state.TaskState{ok, ok}, want: q},
		{name: "all_success waits", rule: dag.AllSuccess, up: []state.TaskState{ok, run}, want: none},
		{name: "all_success waits on retry", rule: dag.AllSuccess, up: []state.TaskState{ok, rty}, want: none},
		{name: "all_success failed early", rule: dag.AllSuccess, up: []state.TaskState{bad, run}, want: upf},
		{name: "all_success upstream_failed propagates", rule: dag.AllSuccess, up: []state.TaskState{upf, ok}, want: upf},
		{name: "all_success skipped propagates", rule: dag.AllSuccess, up: []state.TaskState{skip, ok}, want: skip},
		{name: "all_done waits", rule: dag.AllDone, up: []state.TaskState{bad, q}, want: none},
		{name: "all_done mixed", rule: dag.AllDone, up: []state.TaskState{bad, ok, skip, upf}, want: q},
		{name: "one_failed fires early", rule: dag.OneFailed, up: []state.TaskState{bad, run}, want: q},
		{name: "one_failed on upstream_failed", rule: dag.OneFailed, up: []state.TaskState{upf, ok}, want: q},
		{name: "one_failed none failed", rule: dag.OneFailed, up: []state.TaskState{ok, skip}, want: skip},
		{name: "one_failed waits", rule: dag.OneFailed, up: []state.TaskState{ok, run}, want: none},
		{name: "one_success fires early", rule: dag.OneSuccess, up: []state.TaskState{ok, run}, want: q},
		{name: "one_success all failed", rule: dag.OneSuccess, up: []state.TaskState{bad, upf}, want: upf},
		{name: "one_success all skipped", rule: dag.OneSuccess, up: []state.TaskState{skip, skip}, want: skip},
		{name: "one_success waits", rule: dag.OneSuccess, up: []state.TaskState{bad, run}, want: none},
		{name: "none_failed success and skipped", rule: dag.NoneFailed, up: []state.TaskState{ok, skip}, want: q},
		{name: "none_failed failed", rule: dag.NoneFailed, up: []state.TaskState{ok, bad}, want: upf},
		{name: "none_failed waits", rule: dag.NoneFailed, up: []state.TaskState{ok, none}, want: none},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.rule, tt.up); got != tt.want {
				t.Errorf("decide(%s, %v) = %s, want %s", tt.rule, tt.up, got, tt.want)
			}
		})
	}
}

func TestRunOutcome(t *testing.T) {
	ti := func(s state.TaskState) state.TaskInstance { return state.TaskInstance{State: s} }
	if done, _ := runOutcome([]state.TaskInstance{ti(state.TaskSuccess), ti(state.TaskRunning)}); done {
		t.Error("run with a running task reported finished")
	}
	if done, r := runOutcome([]state.TaskInstance{ti(state.TaskSuccess), ti(state.TaskSkipped)}); !done || r != state.RunSuccess {
		t.Errorf("success+skipped = %v %s, want finished success", done, r)
	}
	if done, r := runOutcome([]state.TaskInstance{ti(state.TaskSuccess), ti(state.TaskUpstreamFailed)}); !done || r != state.RunFailed {
		t.Errorf("success+upstream_failed = %v %s, want finished failed", done, r)
	}
}
