// Package apply owns `lifecycle plan` and `lifecycle apply`: it turns the
// policy file's rules that GCS carries out itself into each bucket's lifecycle
// configuration, compares that with what the Storage API reports, renders the
// difference, and writes the desired configuration to the buckets that differ.
//
// Rules are compared as multisets of canonical rules, so neither the order of
// rules nor the order of the lists inside a condition makes a difference.
// Apply writes with a metageneration precondition taken when the plan was
// made: a bucket changed by someone else since then is not overwritten, and
// its error wraps ErrConcurrentChange. Errors name the bucket.
package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"github.com/labplatform/platform/lifecycle/policy"
	"google.golang.org/api/googleapi"
)

// ErrConcurrentChange is wrapped by Apply's error for a bucket whose
// configuration changed after it was planned.
var ErrConcurrentChange = errors.New("bucket changed since it was planned")

// BucketPlan compares one bucket's lifecycle configuration with the policy.
type BucketPlan struct {
	Bucket, Role string
	// Metageneration is the bucket's metageneration when Current was read;
	// Apply writes only if it is still the same.
	Metageneration   int64
	Current, Desired storage.Lifecycle
	// Changes lists the differences, one readable line each: "- <rule>" for
	// a rule to remove, "+ <rule>" for one to add.
	Changes []string
	InSync  bool
	// EnforcerOnly counts the bucket's rules kept out of GCS: `lifecycle
	// enforce` carries them out.
	EnforcerOnly int
}

// Desired returns the lifecycle configuration GCS should hold for a bucket
// of the policy: its rules that GCS carries out itself (not enforcer_only nor
// requires_loaded), in file order.
func Desired(b policy.Bucket) storage.Lifecycle {
	var l storage.Lifecycle
	for _, r := range b.Rules {
		if r.Native() {
			l.Rules = append(l.Rules, toLifecycleRule(r))
		}
	}
	return l
}

func toLifecycleRule(r policy.Rule) storage.LifecycleRule {
	c := r.Condition
	out := storage.LifecycleRule{
		Action: storage.LifecycleAction{Type: r.Action.Type, StorageClass: string(r.Action.StorageClass)},
		Condition: storage.LifecycleCondition{
			MatchesPrefix: slices.Clone(c.MatchesPrefix),
			MatchesSuffix: slices.Clone(c.MatchesSuffix),
		},
	}
	if c.Age != nil {
		// The storage client sends age 0 only as AllObjects.
		out.Condition.AllObjects = *c.Age == 0
		out.Condition.AgeInDays = int64(*c.Age)
	}
	for _, m := range c.MatchesStorageClass {
		out.Condition.MatchesStorageClasses = append(out.Condition.MatchesStorageClasses, string(m))
	}
	if c.DaysSinceCustomTime != nil {
		out.Condition.DaysSinceCustomTime = int64(*c.DaysSinceCustomTime)
	}
	if c.DaysSinceNoncurrentTime != nil {
		out.Condition.DaysSinceNoncurrentTime = int64(*c.DaysSinceNoncurrentTime)
	}
	if c.NumNewerVersions != nil {
		out.Condition.NumNewerVersions = int64(*c.NumNewerVersions)
	}
	switch {
	case r.Action.Type == policy.ActionAbortIncompleteMultipartUpload:
		// Multipart uploads have no liveness: GCS takes only age, prefix and suffix.
		out.Action.Type = storage.AbortIncompleteMPUAction
		out.Condition.Liveness = storage.LiveAndArchived
	case c.State() == policy.StateArchived:
		out.Condition.Liveness = storage.Archived
	case c.State() == policy.StateAny:
		out.Condition.Liveness = storage.LiveAndArchived
	default:
		out.Condition.Liveness = storage.Live
	}
	return out
}

// Plan reads the lifecycle configuration of the bucket of each role in f
// (for the deployment prefix) and compares it with the desired one. Buckets
// come in policy.Roles order. The file is validated first: an invalid
// policy is never planned.
func Plan(ctx context.Context, client *storage.Client, f *policy.File, prefix string) ([]BucketPlan, error) {
	if f == nil {
		return nil, errors.New("plan: no policy")
	}
	if err := f.Validate(); err != nil {
		return nil, fmt.Errorf("plan: invalid policy: %w", err)
	}
	var plans []BucketPlan
	for _, role := range policy.Roles() {
		b, ok := f.Buckets[role]
		if !ok {
			continue
		}
		name, err := policy.BucketName(prefix, role)
		if err != nil {
			return nil, fmt.Errorf("plan: %w", err)
		}
		attrs, err := client.Bucket(name).Attrs(ctx)
		if err != nil {
			return nil, fmt.Errorf("read lifecycle of bucket %s: %w", name, err)
		}
		desired := Desired(b)
		p := BucketPlan{
			Bucket:         name,
			Role:           role,
			Metageneration: attrs.MetaGeneration,
			Current:        attrs.Lifecycle,
			Desired:        desired,
			EnforcerOnly:   len(b.Rules) - len(desired.Rules),
		}
		p.Changes = Diff(p.Current, p.Desired)
		p.InSync = len(p.Changes) == 0
		plans = append(plans, p)
	}
	return plans, nil
}

// Diff lists what turns current into desired, rules compared as a multiset:
// first the rules to remove ("- <rule>", in current's order), then those to
// add ("+ <rule>", in desired's order). It is empty when they hold the same
// rules.
func Diff(current, desired storage.Lifecycle) []string {
	have := map[string]int{}
	for _, r := range current.Rules {
		have[ruleKey(r)]++
	}
	want := map[string]int{}
	for _, r := range desired.Rules {
		want[ruleKey(r)]++
	}
	var removed, added []string
	for _, r := range current.Rules {
		k := ruleKey(r)
		if have[k] > want[k] {
			removed = append(removed, "- "+Describe(r))
			have[k]--
		}
	}
	for _, r := range desired.Rules {
		k := ruleKey(r)
		if want[k] > have[k] {
			added = append(added, "+ "+Describe(r))
			want[k]--
		}
	}
	return append(removed, added...)
}

const dateLayout = "2006-01-02"

// ruleKey is a canonical text of a rule: equal for rules GCS treats the same.
func ruleKey(r storage.LifecycleRule) string {
	c := r.Condition
	age := "-"
	if c.AllObjects {
		age = "0"
	} else if c.AgeInDays > 0 {
		age = strconv.FormatInt(c.AgeInDays, 10)
	}
	date := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.Format(dateLayout)
	}
	sorted := func(s []string) string {
		s = slices.Clone(s)
		slices.Sort(s)
		s = slices.Compact(s)
		return strconv.Quote(strings.Join(s, "\x00"))
	}
	return strings.Join([]string{
		r.Action.Type, r.Action.StorageClass, age,
		date(c.CreatedBefore), date(c.CustomTimeBefore), date(c.NoncurrentTimeBefore),
		strconv.FormatInt(c.DaysSinceCustomTime, 10), strconv.FormatInt(c.DaysSinceNoncurrentTime, 10),
		strconv.FormatInt(c.NumNewerVersions, 10), strconv.Itoa(int(c.Liveness)),
		sorted(c.MatchesStorageClasses), sorted(c.MatchesPrefix), sorted(c.MatchesSuffix),
	}, "|")
}

// Describe renders a rule on one line, for instance
// "SetStorageClass NEARLINE when age >= 30 days, class in [STANDARD], live only".
func Describe(r storage.LifecycleRule) string {
	action := r.Action.Type
	if r.Action.StorageClass != "" {
		action += " " + r.Action.StorageClass
	}
	c := r.Condition
	var conds []string
	add := func(format string, args ...any) { conds = append(conds, fmt.Sprintf(format, args...)) }
	switch {
	case c.AllObjects:
		add("age >= 0 days")
	case c.AgeInDays > 0:
		add("age >= %d days", c.AgeInDays)
	}
	if !c.CreatedBefore.IsZero() {
		add("created before %s", c.CreatedBefore.Format(dateLayout))
	}
	if !c.CustomTimeBefore.IsZero() {
		add("custom time before %s", c.CustomTimeBefore.Format(dateLayout))
	}
	if c.DaysSinceCustomTime > 0 {
		add("days since custom time >= %d", c.DaysSinceCustomTime)
	}
	if !c.NoncurrentTimeBefore.IsZero() {
		add("noncurrent before %s", c.NoncurrentTimeBefore.Format(dateLayout))
	}
	if c.DaysSinceNoncurrentTime > 0 {
		add("days since noncurrent >= %d", c.DaysSinceNoncurrentTime)
	}
	if c.NumNewerVersions > 0 {
		add("newer versions >= %d", c.NumNewerVersions)
	}
	if len(c.MatchesStorageClasses) > 0 {
		add("class in [%s]", strings.Join(c.MatchesStorageClasses, " "))
	}
	if len(c.MatchesPrefix) > 0 {
		add("name starts with %s", quoteAll(c.MatchesPrefix))
	}
	if len(c.MatchesSuffix) > 0 {
		add("name ends with %s", quoteAll(c.MatchesSuffix))
	}
	switch {
	case r.Action.Type == storage.AbortIncompleteMPUAction:
	case c.Liveness == storage.Live:
		add("live only")
	case c.Liveness == storage.Archived:
		add("noncurrent only")
	default:
		add("live and noncurrent")
	}
	if len(conds) == 0 {
		return action + " always"
	}
	return action + " when " + strings.Join(conds, ", ")
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, " or ")
}

// WriteText renders plans for a person: per bucket, whether it is in sync or
// the rules to remove and add, then a summary line.
func WriteText(w io.Writer, plans []BucketPlan) error {
	var b strings.Builder
	changed, added, removed := 0, 0, 0
	for _, p := range plans {
		fmt.Fprintf(&b, "%s (%s): ", p.Bucket, p.Role)
		if p.InSync {
			fmt.Fprintf(&b, "in sync, %s", plural(len(p.Desired.Rules), "rule"))
		} else {
			changed++
			fmt.Fprintf(&b, "%s", plural(len(p.Changes), "change"))
		}
		if p.EnforcerOnly > 0 {
			fmt.Fprintf(&b, " (+%s left to lifecycle enforce)", plural(p.EnforcerOnly, "enforcer-only rule"))
		}
		b.WriteString("\n")
		for _, c := range p.Changes {
			b.WriteString("  " + c + "\n")
			if strings.HasPrefix(c, "+") {
				added++
			} else {
				removed++
			}
		}
	}
	if changed == 0 {
		fmt.Fprintf(&b, "all %s in sync\n", plural(len(plans), "bucket"))
	} else {
		fmt.Fprintf(&b, "%d of %s to change: %d to add, %d to remove\n",
			changed, plural(len(plans), "bucket"), added, removed)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

// Apply writes the desired lifecycle configuration of every plan not in
// sync, on the condition that the bucket's metageneration is still the one
// the plan read. It goes on past a failed bucket and returns every failure,
// joined; a bucket changed since it was planned fails with an error wrapping
// ErrConcurrentChange, and is left as it is.
func Apply(ctx context.Context, client *storage.Client, plans []BucketPlan) error {
	var errs []error
	for _, p := range plans {
		if p.InSync {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("apply lifecycle to bucket %s: %w", p.Bucket, err))
			break
		}
		errs = append(errs, applyOne(ctx, client, p))
	}
	return errors.Join(errs...)
}

func applyOne(ctx context.Context, client *storage.Client, p BucketPlan) error {
	if p.Metageneration <= 0 {
		return fmt.Errorf("apply lifecycle to bucket %s: the plan has no metageneration to check; make it with Plan", p.Bucket)
	}
	desired := storage.Lifecycle{Rules: slices.Clone(p.Desired.Rules)}
	_, err := client.Bucket(p.Bucket).
		If(storage.BucketConditions{MetagenerationMatch: p.Metageneration}).
		Update(ctx, storage.BucketAttrsToUpdate{Lifecycle: &desired})
	var gerr *googleapi.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &gerr) && gerr.Code == http.StatusPreconditionFailed:
		return fmt.Errorf("apply lifecycle to bucket %s: %w (metageneration is no longer %d), left as it is; run plan again: %w",
			p.Bucket, ErrConcurrentChange, p.Metageneration, err)
	default:
		return fmt.Errorf("apply lifecycle to bucket %s: %w", p.Bucket, err)
	}
}
