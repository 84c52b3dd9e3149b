// Package policy owns the meaning of the lifecycle policy file
// (lifecycle/policies.json): its Go shape, strict parsing, validation, and
// the evaluation of its rules against one object with GCS semantics.
//
// The file is the only copy of the policies. Its field names are those of the
// Terraform google_storage_bucket lifecycle_rule block, so infra/ reads the
// same file with jsondecode(file(...)). Rules marked enforcer_only are never
// sent to GCS: only `lifecycle enforce` carries them out.
//
// Errors: Parse and Load return the decoding error or the validation error;
// Validate returns every problem joined with errors.Join, each problem of a
// bucket or a rule as a *RuleError naming the bucket role and rule index.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle"
)

// Version is the only policy file version this package reads.
const Version = 1

// Class is a GCS storage class.
type Class string

// The storage classes a policy may name, warmest first.
const (
	Standard Class = "STANDARD"
	Nearline Class = "NEARLINE"
	Coldline Class = "COLDLINE"
	Archive  Class = "ARCHIVE"
)

// Rank orders the classes from warm to cold: 0 for STANDARD up to 3 for
// ARCHIVE, and -1 for any other class (unknown, or a legacy one such as
// REGIONAL).
func (c Class) Rank() int {
	switch c {
	case Standard:
		return 0
	case Nearline:
		return 1
	case Coldline:
		return 2
	case Archive:
		return 3
	}
	return -1
}

// Action types, as GCS names them.
const (
	ActionDelete          = "Delete"
	ActionSetStorageClass = "SetStorageClass"
	// ActionAbortIncompleteMultipartUpload applies to multipart uploads, not
	// objects: Decide never chooses it.
	ActionAbortIncompleteMultipartUpload = "AbortIncompleteMultipartUpload"
)

// Object states a condition can select (Terraform's with_state).
const (
	StateLive     = "LIVE"
	StateArchived = "ARCHIVED"
	StateAny      = "ANY"
)

// Bucket roles: the keys of File.Buckets.
const (
	RoleRaw        = "raw"
	RoleCurated    = "curated"
	RoleQuarantine = "quarantine"
	RoleModels     = "models"
)

// Roles returns every bucket role in a fixed order.
func Roles() []string { return []string{RoleRaw, RoleCurated, RoleQuarantine, RoleModels} }

// File is the policy file.
type File struct {
	Version int               `json:"version"`
	Buckets map[string]Bucket `json:"buckets"` // keys are roles: "raw", "curated", "quarantine", "models"
}

// Bucket holds the lifecycle rules of one bucket.
type Bucket struct {
	Rules []Rule `json:"rules"`
}

// Rule is one lifecycle rule.
type Rule struct {
	Description string    `json:"description,omitempty"`
	Action      Action    `json:"action"`
	Condition   Condition `json:"condition"`
	// EnforcerOnly rules are never sent to GCS (nor to Terraform): only
	// `lifecycle enforce` carries them out, because they need data GCS does
	// not have. RequiresLoaded (raw bucket deletes): the object may be
	// deleted only once lineage says its curated Parquet exists and its days
	// are loaded in BigQuery. RequiresLoaded implies EnforcerOnly; Validate
	// requires both to be set so that a reader of the file that only looks
	// at enforcer_only (Terraform) never sends such a rule to GCS.
	EnforcerOnly   bool `json:"enforcer_only,omitempty"`
	RequiresLoaded bool `json:"requires_loaded,omitempty"`
}

// Native reports whether GCS carries the rule out itself, that is whether it
// belongs in the bucket's lifecycle configuration.
func (r Rule) Native() bool { return !r.EnforcerOnly && !r.RequiresLoaded }

// Action is what a rule does.
type Action struct {
	Type         string `json:"type"`                    // "Delete", "SetStorageClass", "AbortIncompleteMultipartUpload"
	StorageClass Class  `json:"storage_class,omitempty"` // SetStorageClass only
}

// Condition selects the objects a rule acts on: every field that is set must
// hold.
type Condition struct {
	Age                     *int     `json:"age,omitempty"` // days since creation
	MatchesStorageClass     []Class  `json:"matches_storage_class,omitempty"`
	MatchesPrefix           []string `json:"matches_prefix,omitempty"`
	MatchesSuffix           []string `json:"matches_suffix,omitempty"`
	DaysSinceCustomTime     *int     `json:"days_since_custom_time,omitempty"`
	DaysSinceNoncurrentTime *int     `json:"days_since_noncurrent_time,omitempty"`
	NumNewerVersions        *int     `json:"num_newer_versions,omitempty"`
	WithState               string   `json:"with_state,omitempty"` // "LIVE", "ARCHIVED", "ANY"; empty means LIVE
}

// State returns the object state the condition selects: WithState, or LIVE
// when it is empty. Both enforcement and the lifecycle sent to GCS use it, so
// an empty with_state means the same everywhere.
func (c Condition) State() string {
	if c.WithState == "" {
		return StateLive
	}
	return c.WithState
}

// Parse decodes a policy file strictly (unknown fields and trailing data are
// errors) and validates it.
func Parse(data []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode policy: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode policy: data after the top-level object")
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Load reads and parses the policy file at path.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load policy: %w", err)
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", path, err)
	}
	return f, nil
}

// Default returns the policies shipped with the module (policies.json,
// embedded in package lifecycle), freshly parsed so callers may change the
// result. It panics if the shipped file is invalid, which the package's
// tests rule out.
func Default() *File {
	f, err := Parse(lifecycle.PoliciesJSON)
	if err != nil {
		panic("shipped policies.json: " + err.Error())
	}
	return f
}

// BucketName returns the name of the bucket playing role in the deployment
// with the given prefix.
func BucketName(prefix, role string) (string, error) {
	if prefix == "" {
		return "", fmt.Errorf("bucket name for role %q: empty deployment prefix", role)
	}
	switch role {
	case RoleRaw:
		return names.RawBucket(prefix), nil
	case RoleCurated:
		return names.CuratedBucket(prefix), nil
	case RoleQuarantine:
		return names.QuarantineBucket(prefix), nil
	case RoleModels:
		return names.ModelsBucket(prefix), nil
	}
	return "", fmt.Errorf("bucket name: unknown role %q (want raw, curated, quarantine or models)", role)
}
