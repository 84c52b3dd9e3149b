// Package operators owns the orchestrator's reusable operators and sensors:
// Shell runs a local command, BigQueryLoad, BigQueryQuery and BigQueryAssert
// run BigQuery jobs, GCSObjectSensor waits for objects in a bucket and
// LineageSensor waits until every raw object of a day has a finished lineage
// document. Each implements dag.Operator or dag.Sensor and talks to the real
// SDK clients it is given; the task's context bounds every call.
//
// Errors name the command, job ID, table, bucket or prefix they concern and
// wrap the underlying error once. A BigQueryAssert violation wraps
// ErrAssertion. Nothing here logs or returns row values other than what an
// assertion's Check chooses to say, so no patient data reaches logs.
package operators
