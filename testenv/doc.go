// Package testenv owns the local Google Cloud that tests, benchmarks and
// `make run` use instead of GCP: Cloud Storage (fake-gcs-server), Pub/Sub
// (pstest) and BigQuery (goccy/bigquery-emulator) running in-process on
// loopback ports, with the Firestore emulator beside them, and GCS object
// notifications delivered to Pub/Sub the way GCS does it.
//
// Start brings the emulators up and exports the standard emulator variables
// (STORAGE_EMULATOR_HOST, PUBSUB_EMULATOR_HOST, BIGQUERY_EMULATOR_HOST) into
// the process environment, because two of the emulators read them there: one
// Env per process at a time. Provision creates a platform's buckets, topics,
// subscriptions, notification and BigQuery table from contracts; tests get an
// isolated platform each (own project id and bucket prefix) from
// Env.Platform, so they can run in parallel against one Env.
//
// Stop and Restart simulate an outage of one emulator: its port refuses
// connections and open ones are closed, then it listens again on the same
// address with the data it had.
//
// Nothing imports testenv except tests and the labstack command.
package testenv
