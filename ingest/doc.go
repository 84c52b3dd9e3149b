// Package ingest owns the movement of robot exports from the NFS mounts of
// the ingest host into the raw bucket, exactly once.
//
// A Shipper polls <root>/<robot>/ (robot ids as in names.ValidRobot) on an
// interval; NFS gives no reliable inotify. It decides when a file is
// complete by the robot's convention (Stability, Rename or DoneMarker),
// reads it through the FS seam (OS in production), and uploads it as
// names.RawObject with ifGenerationMatch=0 and the CRC32C for GCS to check.
// Its Checkpoint (bbolt) records the intended object name before an upload
// and the confirmed object after it, so a restart neither loses nor repeats
// a file; content hashes (sha256) deduplicate identical re-exports.
// Append-only databases (<root>/<robot>/db/*.csv) are shipped as
// line-aligned chunks (names.ChunkObject), each with the header repeated,
// following rotations and truncations as new series.
//
// Failures of one file or database (ESTALE, permission denied, a file that
// vanishes or changes while read, GCS errors) are logged with slog, counted
// in Metrics by kind, and retried with backoff in a later pass; they never
// mark anything complete. Errors callers may branch on: *ConflictError (an
// object name holds other content) and *ChangedError (a source changed
// while it was read). Configuration is Load; the CLI is cmd/ingest.
package ingest
