package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// RuleError is one problem of a policy file, in a bucket (Index -1) or in
// one of its rules (Index is the rule's position in the bucket's rules).
type RuleError struct {
	Role    string
	Index   int
	Problem string
}

func (e *RuleError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("buckets.%s: %s", e.Role, e.Problem)
	}
	return fmt.Sprintf("buckets.%s.rules[%d]: %s", e.Role, e.Index, e.Problem)
}

// Validate reports every problem of the file, joined with errors.Join. Each
// problem of a bucket or rule is a *RuleError; nil means the file is valid.
func (f *File) Validate() error {
	var errs []error
	if f.Version != Version {
		errs = append(errs, fmt.Errorf("version %d is not supported (want %d)", f.Version, Version))
	}
	for _, role := range sortedRoles(f) {
		if !slices.Contains(Roles(), role) {
			errs = append(errs, &RuleError{Role: role, Index: -1,
				Problem: "unknown bucket role (want raw, curated, quarantine or models)"})
			continue
		}
		errs = append(errs, validateBucket(role, f.Buckets[role])...)
	}
	return errors.Join(errs...)
}

// sortedRoles returns the file's roles, known ones in Roles order first, so
// that problems are reported in a stable order.
func sortedRoles(f *File) []string {
	var known, unknown []string
	for _, r := range Roles() {
		if _, ok := f.Buckets[r]; ok {
			known = append(known, r)
		}
	}
	for r := range f.Buckets {
		if !slices.Contains(Roles(), r) {
			unknown = append(unknown, r)
		}
	}
	slices.Sort(unknown)
	return append(known, unknown...)
}

func validateBucket(role string, b Bucket) []error {
	var errs []error
	ok := make([]bool, len(b.Rules)) // rules without problems of their own
	for i, r := range b.Rules {
		problems := ruleProblems(role, r)
		for _, p := range problems {
			errs = append(errs, &RuleError{Role: role, Index: i, Problem: p})
		}
		ok[i] = len(problems) == 0
	}
	// Rules compared with each other only once each is sound on its own,
	// so that one mistake is not reported again as a conflict.
	for j, later := range b.Rules {
		if !ok[j] {
			continue
		}
		for i, earlier := range b.Rules[:j] {
			if !ok[i] {
				continue
			}
			for _, p := range pairProblems(i, earlier, j, later) {
				errs = append(errs, &RuleError{Role: role, Index: j, Problem: p})
			}
		}
	}
	return errs
}

// ruleProblems lists what is wrong with one rule on its own.
func ruleProblems(role string, r Rule) []string {
	var ps []string
	add := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	c := r.Condition

	switch r.Action.Type {
	case ActionSetStorageClass:
		switch {
		case r.Action.StorageClass == "":
			add("SetStorageClass needs a storage_class")
		case r.Action.StorageClass.Rank() < 0:
			add("unknown storage class %q in action (want STANDARD, NEARLINE, COLDLINE or ARCHIVE)", r.Action.StorageClass)
		case r.Action.StorageClass == Standard:
			add("SetStorageClass to STANDARD is a transition to a warmer class: lifecycle rules only move objects colder")
		}
	case ActionDelete, ActionAbortIncompleteMultipartUpload:
		if r.Action.StorageClass != "" {
			add("%s takes no storage_class (got %q)", r.Action.Type, r.Action.StorageClass)
		}
	case "":
		add("no action type (want Delete, SetStorageClass or AbortIncompleteMultipartUpload)")
	default:
		add("unknown action type %q (want Delete, SetStorageClass or AbortIncompleteMultipartUpload)", r.Action.Type)
	}

	for k, m := range c.MatchesStorageClass {
		if m.Rank() < 0 {
			add("unknown storage class %q in matches_storage_class[%d] (want STANDARD, NEARLINE, COLDLINE or ARCHIVE)", m, k)
			continue
		}
		if to := r.Action.StorageClass; r.Action.Type == ActionSetStorageClass && to.Rank() >= 0 && m.Rank() >= to.Rank() {
			add("transition to %s is not colder than %s, a class the rule matches", to, m)
		}
	}

	days := []struct {
		name string
		v    *int
	}{
		{"age", c.Age},
		{"days_since_custom_time", c.DaysSinceCustomTime},
		{"days_since_noncurrent_time", c.DaysSinceNoncurrentTime},
		{"num_newer_versions", c.NumNewerVersions},
	}
	for _, d := range days {
		switch {
		case d.v == nil:
		case *d.v < 0:
			add("%s is negative (%d)", d.name, *d.v)
		case *d.v == 0 && d.name != "age":
			// The storage client drops these fields when they are zero, so
			// GCS would get a rule without the condition.
			add("%s 0 cannot be sent to GCS (a zero is dropped); omit it or use 1 or more", d.name)
		}
	}
	for k, p := range c.MatchesPrefix {
		if p == "" {
			add("matches_prefix[%d] is empty", k)
		}
	}
	for k, s := range c.MatchesSuffix {
		if s == "" {
			add("matches_suffix[%d] is empty", k)
		}
	}

	if c.Age == nil && len(c.MatchesStorageClass) == 0 && len(c.MatchesPrefix) == 0 && len(c.MatchesSuffix) == 0 &&
		c.DaysSinceCustomTime == nil && c.DaysSinceNoncurrentTime == nil && c.NumNewerVersions == nil {
		add("no condition: set at least one of age, matches_storage_class, matches_prefix, matches_suffix, " +
			"days_since_custom_time, days_since_noncurrent_time or num_newer_versions")
	}

	switch c.WithState {
	case "", StateLive, StateArchived, StateAny:
	default:
		add("unknown with_state %q (want LIVE, ARCHIVED or ANY)", c.WithState)
	}

	if r.Action.Type == ActionAbortIncompleteMultipartUpload {
		if len(c.MatchesStorageClass) > 0 || c.DaysSinceCustomTime != nil || c.DaysSinceNoncurrentTime != nil ||
			c.NumNewerVersions != nil || c.WithState != "" {
			add("AbortIncompleteMultipartUpload takes only the age, matches_prefix and matches_suffix conditions")
		}
		if r.EnforcerOnly {
			add("AbortIncompleteMultipartUpload cannot be enforcer_only: the enforcer does not see multipart uploads")
		}
	} else if c.State() == StateLive {
		if c.DaysSinceNoncurrentTime != nil {
			add("days_since_noncurrent_time never holds for a live object: set with_state to ARCHIVED or ANY")
		}
		if c.NumNewerVersions != nil {
			add("num_newer_versions never holds for a live object: set with_state to ARCHIVED or ANY")
		}
	}

	if r.RequiresLoaded {
		if role != RoleRaw {
			add("requires_loaded is only for the raw bucket (this is %s)", role)
		}
		if r.Action.Type != ActionDelete {
			add("requires_loaded is only for a Delete action (this is %q)", r.Action.Type)
		}
		if !r.EnforcerOnly {
			add("requires_loaded needs enforcer_only: GCS cannot check lineage and would delete unloaded data")
		}
	}
	return ps
}

// pairProblems lists the conflicts between two rules of one bucket, earlier
// (index i) before later (index j) in the file. Both are sound on their own.
func pairProblems(i int, a Rule, j int, b Rule) []string {
	var ps []string
	add := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	if a.Action.Type == ActionAbortIncompleteMultipartUpload || b.Action.Type == ActionAbortIncompleteMultipartUpload {
		if a.Action == b.Action && sameCondition(a.Condition, b.Condition) {
			add("duplicates rule %d", i)
		}
		return ps // multipart uploads are not objects: no other conflict
	}
	if a.Action == b.Action && sameCondition(a.Condition, b.Condition) {
		add("duplicates rule %d", i)
		return ps
	}

	// A deletion before a transition: the Delete holds whenever the
	// transition would, so the transition never happens.
	if a.Action.Type == ActionDelete && b.Action.Type == ActionSetStorageClass && covers(a.Condition, b.Condition, false, false) {
		add("deletion before transition: rule %d deletes every object this rule would move to %s, at %s (this rule: %s), so the transition would never happen",
			i, b.Action.StorageClass, ageText(a.Condition.Age), ageText(b.Condition.Age))
	}
	if b.Action.Type == ActionDelete && a.Action.Type == ActionSetStorageClass && covers(b.Condition, a.Condition, false, false) {
		add("deletion before transition: this rule deletes every object rule %d would move to %s, at %s (rule %d: %s), so the transition would never happen",
			i, a.Action.StorageClass, ageText(b.Condition.Age), i, ageText(a.Condition.Age))
	}

	if a.Action.Type != ActionSetStorageClass || b.Action.Type != ActionSetStorageClass {
		return ps
	}
	ageA, ageB := ageOr0(a.Condition.Age), ageOr0(b.Condition.Age)
	rankA, rankB := a.Action.StorageClass.Rank(), b.Action.StorageClass.Rank()
	switch {
	case ageA == ageB && rankA != rankB &&
		covers(a.Condition, b.Condition, true, true) && covers(b.Condition, a.Condition, true, true) &&
		classesOverlap(a.Condition.MatchesStorageClass, b.Condition.MatchesStorageClass):
		add("contradicts rule %d: same objects at the same age (%s) moved to %s there and to %s here",
			i, ageText(a.Condition.Age), a.Action.StorageClass, b.Action.StorageClass)
	case ageA < ageB && rankB < rankA && covers(a.Condition, b.Condition, true, true):
		add("transition chain goes warmer with age: rule %d moves these objects to %s at %s, this rule to warmer %s at %s",
			i, a.Action.StorageClass, ageText(a.Condition.Age), b.Action.StorageClass, ageText(b.Condition.Age))
	case ageB < ageA && rankA < rankB && covers(b.Condition, a.Condition, true, true):
		add("transition chain goes warmer with age: this rule moves these objects to %s at %s, rule %d to warmer %s at %s",
			b.Action.StorageClass, ageText(b.Condition.Age), i, a.Action.StorageClass, ageText(a.Condition.Age))
	}
	return ps
}

func ageOr0(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func ageText(p *int) string {
	if p == nil {
		return "any age"
	}
	return fmt.Sprintf("age %d", *p)
}

// covers reports whether condition a holds for every object (at every
// moment) for which b holds, optionally leaving age and storage class out.
func covers(a, b Condition, ignoreAge, ignoreClass bool) bool {
	if a.State() != StateAny && a.State() != b.State() {
		return false
	}
	if !namesCovered(a.MatchesPrefix, b.MatchesPrefix, strings.HasPrefix) ||
		!namesCovered(a.MatchesSuffix, b.MatchesSuffix, strings.HasSuffix) {
		return false
	}
	if !ignoreClass && len(a.MatchesStorageClass) > 0 {
		if len(b.MatchesStorageClass) == 0 {
			return false
		}
		for _, c := range b.MatchesStorageClass {
			if !slices.Contains(a.MatchesStorageClass, c) {
				return false
			}
		}
	}
	if !ignoreAge && a.Age != nil && *a.Age > ageOr0(b.Age) {
		return false
	}
	return thresholdCovered(a.DaysSinceCustomTime, b.DaysSinceCustomTime) &&
		thresholdCovered(a.DaysSinceNoncurrentTime, b.DaysSinceNoncurrentTime) &&
		thresholdCovered(a.NumNewerVersions, b.NumNewerVersions)
}

// namesCovered reports whether every name matching one of b's patterns
// matches one of a's (an empty list matches every name).
func namesCovered(a, b []string, match func(s, pattern string) bool) bool {
	if len(a) == 0 {
		return true
	}
	if len(b) == 0 {
		return false
	}
	for _, pb := range b {
		if !slices.ContainsFunc(a, func(pa string) bool { return match(pb, pa) }) {
			return false
		}
	}
	return true
}

// thresholdCovered: "value >= a" holds whenever "value >= b" holds, where a
// missing threshold always holds and a missing value (b unset) may be absent.
func thresholdCovered(a, b *int) bool {
	if a == nil {
		return true
	}
	return b != nil && *b >= *a
}

func classesOverlap(a, b []Class) bool {
	if len(a) == 0 || len(b) == 0 {
		return true
	}
	return slices.ContainsFunc(a, func(c Class) bool { return slices.Contains(b, c) })
}

// sameCondition reports whether two conditions are equal, lists compared as
// sets.
func sameCondition(a, b Condition) bool {
	return samePtr(a.Age, b.Age) && samePtr(a.DaysSinceCustomTime, b.DaysSinceCustomTime) &&
		samePtr(a.DaysSinceNoncurrentTime, b.DaysSinceNoncurrentTime) && samePtr(a.NumNewerVersions, b.NumNewerVersions) &&
		a.State() == b.State() &&
		sameSet(a.MatchesStorageClass, b.MatchesStorageClass) &&
		sameSet(a.MatchesPrefix, b.MatchesPrefix) && sameSet(a.MatchesSuffix, b.MatchesSuffix)
}

func samePtr(a, b *int) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func sameSet[T comparable](a, b []T) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}
