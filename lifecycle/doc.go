// Package lifecycle storage lifecycle policy as code: the policy file, its application to GCS buckets, a data-aware enforcer for what GCS cannot express, and the storage cost report.
//
// Not built yet: issue #7 fills this module.
package lifecycle
