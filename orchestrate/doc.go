// Package orchestrate is the root of the orchestrator module: the DAG engine
// (dag, schedule, scheduler), its state (state, state/boltstore,
// state/firestorestore), operators and alerts (operators, notify), the
// platform's DAGs (dags) and the orchestrate command (cmd/orchestrate). See
// the module README.
package orchestrate
