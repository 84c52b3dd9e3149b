// Package serve the read side: patient summary and history repositories (Firestore, BigQuery), derived indicators, and the model registry and scorer.
//
// Not built yet: issue #8 fills this module.
package serve
