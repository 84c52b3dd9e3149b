package scheduler

import (
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/state"
)

// decide applies a trigger rule to the states of a task's upstream tasks. It
// returns state.TaskNone while the task must keep waiting, or the state the
// task moves to: queued (run it), upstream_failed or skipped.
func decide(rule dag.TriggerRule, upstream []state.TaskState) state.TaskState {
	if len(upstream) == 0 {
		return state.TaskQueued
	}
	var success, failed, skipped, done int
	for _, s := range upstream {
		switch s {
		case state.TaskSuccess:
			success++
		case state.TaskFailed, state.TaskUpstreamFailed:
			failed++
		case state.TaskSkipped:
			skipped++
		}
		if s.Finished() {
			done++
		}
	}
	all := done == len(upstream)
	switch rule {
	case dag.AllSuccess, "":
		switch {
		case failed > 0:
			return state.TaskUpstreamFailed
		case skipped > 0:
			return state.TaskSkipped
		case success == len(upstream):
			return state.TaskQueued
		}
	case dag.AllDone:
		if all {
			return state.TaskQueued
		}
	case dag.OneFailed:
		switch {
		case failed > 0:
			return state.TaskQueued
		case all:
			return state.TaskSkipped
		}
	case dag.OneSuccess:
		switch {
		case success > 0:
			return state.TaskQueued
		case all && skipped == len(upstream):
			return state.TaskSkipped
		case all:
			return state.TaskUpstreamFailed
		}
	case dag.NoneFailed:
		switch {
		case failed > 0:
			return state.TaskUpstreamFailed
		case all:
			return state.TaskQueued
		}
	}
	return state.TaskNone
}

// runOutcome says whether every task of a run is finished and, if so,
// whether the run failed: it fails when any task failed or could not run
// because an upstream failed.
func runOutcome(tasks []state.TaskInstance) (finished bool, result state.RunState) {
	result = state.RunSuccess
	for _, ti := range tasks {
		if !ti.State.Finished() {
			return false, ""
		}
		if ti.State == state.TaskFailed || ti.State == state.TaskUpstreamFailed {
			result = state.RunFailed
		}
	}
	return true, result
}
