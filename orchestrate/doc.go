// Package orchestrate the DAG engine (tasks, dependencies, operators, sensors, scheduler, persistent state, CLI) and the platform's DAGs: BigQuery day loads, lifecycle enforcement and data quality.
//
// Not built yet: issue #6 fills this module.
package orchestrate
