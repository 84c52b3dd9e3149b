// Package robotsim owns the robot simulator: a fleet of organizer robots
// (R001 upwards) writing CSV exports into export folders <root>/<robot>/, as
// the NFS shares the ingest host mounts, at a configurable rate and size,
// each robot on firmware with schema v1, v2 or v3 of contracts/robotcsv.
//
// Content is realistic and checked against contracts/labtests: a stable
// population of pseudonymous patients, each visit a sample (a unique sample
// id) with one or more panels (basic and comprehensive metabolic panel, CBC,
// lipids, HbA1c, TSH, ferritin, CRP), values drawn around each test's
// reference interval with some abnormal and rare critical values, alternate
// units on some robots, and on v3 robots about 5% of results re-sent later
// with status corrected. Faults (all off by default) add malformed rows,
// truncated last lines, slow in-place writes, temp-name-then-rename and
// done-marker conventions, re-exports, empty and very large files, and an
// append-only plain-file database per robot that rotates and is truncated.
//
// Everything is deterministic for a seed: each robot draws from its own
// seeded PCG streams, and time comes from an injected Clock, so the same
// seed and options write byte-identical files. The Manifest records every
// complete file (path, SHA-256, valid and malformed rows, each malformed
// line and its kind, faults) and every database series, for tests of
// exactly-once delivery. Generate writes one export to any io.Writer,
// streaming, for benchmarks.
//
// # Errors
//
// New reports every problem with the options at once. File system errors
// are returned wrapped with the robot and file name; the simulator stops at
// the first one.
package robotsim
