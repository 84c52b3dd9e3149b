// Package loadtest holds the test that the local BigQuery (testenv) loads
// the files parquetout writes into lab.results. It is a package of its own
// so that parquetout's test binary, whose benchmark reports the process's
// resident memory, does not link the local GCP.
package loadtest
