// Package ingest pulls robot exports from the NFS mounts into the raw bucket exactly once: stable-file detection, CRC32C-checked uploads with ifGenerationMatch=0, a crash-safe local checkpoint, and chunked shipping of append-only databases.
//
// Not built yet: issue #4 fills this module.
package ingest
