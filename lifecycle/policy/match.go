package policy

import (
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
)

// Object is what evaluating a rule needs to know of one object version.
type Object struct {
	Bucket, Name string
	Generation   int64
	Size         int64
	Class        Class
	// Created is when this version was written; CustomTime is the object's
	// custom time (zero when unset); Noncurrent is when this version stopped
	// being live (zero for live objects).
	Created, CustomTime, Noncurrent time.Time
	Live                            bool
	// NewerVersions counts the versions newer than this one (0 for a live
	// object). Listing attributes do not carry it: whoever lists the
	// versions of an object fills it in.
	NewerVersions int
}

// ObjectFrom takes what evaluation needs from an object's attributes. A
// version is live when it has no deletion time; an empty storage class (as
// some emulators report) is taken as STANDARD. NewerVersions is left 0.
func ObjectFrom(a *storage.ObjectAttrs) Object {
	class := Class(a.StorageClass)
	if class == "" {
		class = Standard
	}
	return Object{
		Bucket:     a.Bucket,
		Name:       a.Name,
		Generation: a.Generation,
		Size:       a.Size,
		Class:      class,
		Created:    a.Created,
		CustomTime: a.CustomTime,
		Noncurrent: a.Deleted,
		Live:       a.Deleted.IsZero(),
	}
}

// daysSince counts the whole days from t to now; ok is false when t is zero
// or after now.
func daysSince(t, now time.Time) (days int, ok bool) {
	if t.IsZero() || now.Before(t) {
		return 0, false
	}
	return int(now.Sub(t) / (24 * time.Hour)), true
}

// atLeast reports whether the whole days from t to now are at least *min; a
// nil min always holds.
func atLeast(minDays *int, t, now time.Time) bool {
	if minDays == nil {
		return true
	}
	d, ok := daysSince(t, now)
	return ok && d >= *minDays
}

// Matches reports whether the rule's condition holds for o at now, with GCS
// semantics: every field that is set must hold; ages count whole days (24
// hours) since Created; DaysSinceCustomTime is false when CustomTime is zero
// and DaysSinceNoncurrentTime when Noncurrent is zero; an empty with_state
// selects live objects. The action is not considered.
func (r Rule) Matches(o Object, now time.Time) bool {
	c := r.Condition
	switch c.State() {
	case StateLive:
		if !o.Live {
			return false
		}
	case StateArchived:
		if o.Live {
			return false
		}
	case StateAny:
	default:
		return false
	}
	if len(c.MatchesStorageClass) > 0 && !slices.Contains(c.MatchesStorageClass, o.Class) {
		return false
	}
	if len(c.MatchesPrefix) > 0 && !slices.ContainsFunc(c.MatchesPrefix, func(p string) bool { return strings.HasPrefix(o.Name, p) }) {
		return false
	}
	if len(c.MatchesSuffix) > 0 && !slices.ContainsFunc(c.MatchesSuffix, func(s string) bool { return strings.HasSuffix(o.Name, s) }) {
		return false
	}
	if c.NumNewerVersions != nil && o.NewerVersions < *c.NumNewerVersions {
		return false
	}
	return atLeast(c.Age, o.Created, now) &&
		atLeast(c.DaysSinceCustomTime, o.CustomTime, now) &&
		atLeast(c.DaysSinceNoncurrentTime, o.Noncurrent, now)
}

// Decide returns the rule whose action GCS would take for o at now among the
// bucket's rules, with GCS precedence: a matching Delete wins over any
// SetStorageClass (the first such Delete is returned); among matching
// SetStorageClass rules the coldest class wins (the first of equals); a
// SetStorageClass to the object's current class or a warmer one is no
// action. AbortIncompleteMultipartUpload rules are about uploads, not
// objects, and never chosen. includeEnforcerOnly selects whether the rules
// GCS does not carry out (enforcer_only, requires_loaded) count. ok is false
// when no action is due.
func (b Bucket) Decide(o Object, now time.Time, includeEnforcerOnly bool) (rule Rule, ok bool) {
	bestRank := o.Class.Rank()
	for _, r := range b.Rules {
		if !r.Native() && !includeEnforcerOnly {
			continue
		}
		switch r.Action.Type {
		case ActionDelete:
			if r.Matches(o, now) {
				return r, true
			}
		case ActionSetStorageClass:
			if rank := r.Action.StorageClass.Rank(); rank > bestRank && r.Matches(o, now) {
				rule, ok, bestRank = r, true, rank
			}
		}
	}
	return rule, ok
}
