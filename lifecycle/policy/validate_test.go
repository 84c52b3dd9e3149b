package policy

import (
	"errors"
	"strings"
	"testing"
)

func intp(v int) *int { return &v }

func set(class Class, c Condition) Rule {
	return Rule{Action: Action{Type: ActionSetStorageClass, StorageClass: class}, Condition: c}
}

func del(c Condition) Rule { return Rule{Action: Action{Type: ActionDelete}, Condition: c} }

func oneBucket(role string, rules ...Rule) *File {
	return &File{Version: Version, Buckets: map[string]Bucket{role: {Rules: rules}}}
}

// problem is one expected *RuleError.
type problem struct {
	role  string
	index int
	text  string // a part of the problem's text
}

// ruleErrors flattens a Validate error into its *RuleErrors and the others.
func ruleErrors(err error) (rules []*RuleError, others []error) {
	if err == nil {
		return nil, nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *RuleError
		if errors.As(e, &re) {
			rules = append(rules, re)
		} else {
			others = append(others, e)
		}
	}
	return rules, others
}

func TestValidateReportsEachProblem(t *testing.T) {
	live := StateLive
	tests := []struct {
		name string
		f    *File
		want []problem // exactly these, in this order
	}{
		{
			name: "valid transitions and deletion",
			f: oneBucket(RoleRaw,
				set(Nearline, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard}}),
				set(Coldline, Condition{Age: intp(90), MatchesStorageClass: []Class{Standard, Nearline}}),
				del(Condition{Age: intp(400)}),
			),
		},
		{
			name: "unknown storage class in the action",
			f:    oneBucket(RoleCurated, set("GLACIER", Condition{Age: intp(30)})),
			want: []problem{{RoleCurated, 0, `unknown storage class "GLACIER" in action`}},
		},
		{
			name: "unknown storage class in matches_storage_class",
			f:    oneBucket(RoleCurated, set(Archive, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard, "REGIONAL"}})),
			want: []problem{{RoleCurated, 0, `unknown storage class "REGIONAL" in matches_storage_class[1]`}},
		},
		{
			name: "unknown action type",
			f:    oneBucket(RoleRaw, Rule{Action: Action{Type: "Move"}, Condition: Condition{Age: intp(1)}}),
			want: []problem{{RoleRaw, 0, `unknown action type "Move"`}},
		},
		{
			name: "missing action type",
			f:    oneBucket(RoleRaw, Rule{Condition: Condition{Age: intp(1)}}),
			want: []problem{{RoleRaw, 0, "no action type"}},
		},
		{
			name: "SetStorageClass without a class",
			f:    oneBucket(RoleRaw, set("", Condition{Age: intp(30)})),
			want: []problem{{RoleRaw, 0, "SetStorageClass needs a storage_class"}},
		},
		{
			name: "Delete with a class",
			f:    oneBucket(RoleRaw, Rule{Action: Action{Type: ActionDelete, StorageClass: Coldline}, Condition: Condition{Age: intp(30)}}),
			want: []problem{{RoleRaw, 0, `Delete takes no storage_class (got "COLDLINE")`}},
		},
		{
			name: "transition to a warmer class than the one matched",
			f:    oneBucket(RoleCurated, set(Nearline, Condition{Age: intp(30), MatchesStorageClass: []Class{Coldline}})),
			want: []problem{{RoleCurated, 0, "transition to NEARLINE is not colder than COLDLINE, a class the rule matches"}},
		},
		{
			name: "transition to a class the rule matches",
			f:    oneBucket(RoleCurated, set(Nearline, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard, Nearline}})),
			want: []problem{{RoleCurated, 0, "transition to NEARLINE is not colder than NEARLINE"}},
		},
		{
			name: "transition to STANDARD",
			f:    oneBucket(RoleCurated, set(Standard, Condition{Age: intp(30)})),
			want: []problem{{RoleCurated, 0, "SetStorageClass to STANDARD is a transition to a warmer class"}},
		},
		{
			name: "transition chain goes warmer with age",
			f: oneBucket(RoleCurated,
				set(Coldline, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard}}),
				set(Nearline, Condition{Age: intp(90), MatchesStorageClass: []Class{Standard}}),
			),
			want: []problem{{RoleCurated, 1, "transition chain goes warmer with age: rule 0 moves these objects to COLDLINE at age 30, this rule to warmer NEARLINE at age 90"}},
		},
		{
			name: "transition chain goes warmer with age, rules in reverse order",
			f: oneBucket(RoleCurated,
				set(Nearline, Condition{Age: intp(90), MatchesPrefix: []string{"results/x"}}),
				set(Coldline, Condition{Age: intp(30), MatchesPrefix: []string{"results/"}}),
			),
			want: []problem{
				{RoleCurated, 1, "this rule moves these objects to COLDLINE at age 30, rule 0 to warmer NEARLINE at age 90"},
			},
		},
		{
			name: "a narrower early transition is no warmer chain",
			f: oneBucket(RoleCurated,
				set(Coldline, Condition{Age: intp(30), MatchesPrefix: []string{"results/"}}),
				set(Nearline, Condition{Age: intp(90)}),
			),
		},
		{
			name: "deletion before a transition",
			f: oneBucket(RoleQuarantine,
				del(Condition{Age: intp(30)}),
				set(Nearline, Condition{Age: intp(90), MatchesStorageClass: []Class{Standard}}),
			),
			want: []problem{{RoleQuarantine, 1, "deletion before transition: rule 0 deletes every object this rule would move to NEARLINE, at age 30 (this rule: age 90)"}},
		},
		{
			name: "deletion at the transition's age, after it in the file",
			f: oneBucket(RoleQuarantine,
				set(Nearline, Condition{Age: intp(90), WithState: live}),
				del(Condition{Age: intp(90), WithState: StateAny}),
			),
			want: []problem{{RoleQuarantine, 1, "deletion before transition: this rule deletes every object rule 0 would move to NEARLINE, at age 90 (rule 0: age 90)"}},
		},
		{
			name: "deletion of other objects before a transition is fine",
			f: oneBucket(RoleRaw,
				del(Condition{Age: intp(1), MatchesPrefix: []string{"tmp/"}}),
				del(Condition{Age: intp(20), MatchesStorageClass: []Class{Nearline}}),
				del(Condition{Age: intp(5), WithState: StateArchived}),
				del(Condition{Age: intp(5), DaysSinceCustomTime: intp(3)}),
				set(Nearline, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard}}),
			),
		},
		{
			name: "overlapping rules that contradict",
			f: oneBucket(RoleCurated,
				set(Nearline, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard}}),
				set(Coldline, Condition{Age: intp(30), MatchesStorageClass: []Class{Standard, Nearline}}),
			),
			want: []problem{{RoleCurated, 1, "contradicts rule 0: same objects at the same age (age 30) moved to NEARLINE there and to COLDLINE here"}},
		},
		{
			name: "same age, different objects is no contradiction",
			f: oneBucket(RoleCurated,
				set(Nearline, Condition{Age: intp(30), MatchesPrefix: []string{"a/"}}),
				set(Coldline, Condition{Age: intp(30), MatchesPrefix: []string{"b/"}}),
			),
		},
		{
			name: "duplicate rule",
			f: oneBucket(RoleModels,
				del(Condition{DaysSinceNoncurrentTime: intp(7), WithState: StateArchived}),
				del(Condition{DaysSinceNoncurrentTime: intp(7), WithState: StateArchived}),
			),
			want: []problem{{RoleModels, 1, "duplicates rule 0"}},
		},
		{
			name: "negative days",
			f: oneBucket(RoleRaw,
				del(Condition{Age: intp(-1)}),
				del(Condition{NumNewerVersions: intp(-2), DaysSinceCustomTime: intp(-3), WithState: StateAny}),
			),
			want: []problem{
				{RoleRaw, 0, "age is negative (-1)"},
				{RoleRaw, 1, "days_since_custom_time is negative (-3)"},
				{RoleRaw, 1, "num_newer_versions is negative (-2)"},
			},
		},
		{
			name: "zero days the storage client would drop",
			f:    oneBucket(RoleRaw, del(Condition{DaysSinceCustomTime: intp(0)})),
			want: []problem{{RoleRaw, 0, "days_since_custom_time 0 cannot be sent to GCS"}},
		},
		{
			name: "no condition at all",
			f:    oneBucket(RoleQuarantine, Rule{Action: Action{Type: ActionDelete}, Condition: Condition{WithState: StateAny}}),
			want: []problem{{RoleQuarantine, 0, "no condition"}},
		},
		{
			name: "empty prefix",
			f:    oneBucket(RoleQuarantine, del(Condition{MatchesPrefix: []string{"rows/", ""}})),
			want: []problem{{RoleQuarantine, 0, "matches_prefix[1] is empty"}},
		},
		{
			name: "unknown bucket role",
			f:    oneBucket("archive", del(Condition{Age: intp(1)})),
			want: []problem{{"archive", -1, "unknown bucket role"}},
		},
		{
			name: "unknown with_state",
			f:    oneBucket(RoleRaw, del(Condition{Age: intp(1), WithState: "DELETED"})),
			want: []problem{{RoleRaw, 0, `unknown with_state "DELETED"`}},
		},
		{
			name: "noncurrent condition on live objects",
			f:    oneBucket(RoleRaw, del(Condition{DaysSinceNoncurrentTime: intp(7)}), del(Condition{NumNewerVersions: intp(3), WithState: live})),
			want: []problem{
				{RoleRaw, 0, "days_since_noncurrent_time never holds for a live object"},
				{RoleRaw, 1, "num_newer_versions never holds for a live object"},
			},
		},
		{
			name: "multipart abort with object conditions",
			f: oneBucket(RoleRaw, Rule{Action: Action{Type: ActionAbortIncompleteMultipartUpload},
				Condition: Condition{Age: intp(7), WithState: StateLive}, EnforcerOnly: true}),
			want: []problem{
				{RoleRaw, 0, "AbortIncompleteMultipartUpload takes only the age, matches_prefix and matches_suffix conditions"},
				{RoleRaw, 0, "AbortIncompleteMultipartUpload cannot be enforcer_only"},
			},
		},
		{
			name: "requires_loaded outside the raw bucket",
			f:    oneBucket(RoleCurated, Rule{Action: Action{Type: ActionDelete}, Condition: Condition{Age: intp(400)}, EnforcerOnly: true, RequiresLoaded: true}),
			want: []problem{{RoleCurated, 0, "requires_loaded is only for the raw bucket (this is curated)"}},
		},
		{
			name: "requires_loaded on a transition",
			f: oneBucket(RoleRaw, Rule{Action: Action{Type: ActionSetStorageClass, StorageClass: Archive},
				Condition: Condition{Age: intp(400)}, EnforcerOnly: true, RequiresLoaded: true}),
			want: []problem{{RoleRaw, 0, `requires_loaded is only for a Delete action (this is "SetStorageClass")`}},
		},
		{
			name: "requires_loaded without enforcer_only",
			f:    oneBucket(RoleRaw, Rule{Action: Action{Type: ActionDelete}, Condition: Condition{Age: intp(400)}, RequiresLoaded: true}),
			want: []problem{{RoleRaw, 0, "requires_loaded needs enforcer_only"}},
		},
		{
			name: "problems in several buckets are all reported",
			f: &File{Version: Version, Buckets: map[string]Bucket{
				RoleQuarantine: {Rules: []Rule{del(Condition{Age: intp(-5)})}},
				RoleRaw:        {Rules: []Rule{del(Condition{Age: intp(1)}), set(Nearline, Condition{})}},
				"tmp":          {},
			}},
			want: []problem{
				{RoleRaw, 1, "no condition"},
				{RoleQuarantine, 0, "age is negative"},
				{"tmp", -1, "unknown bucket role"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, others := ruleErrors(tc.f.Validate())
			for _, e := range others {
				t.Errorf("unexpected error: %v", e)
			}
			for i := 0; i < max(len(got), len(tc.want)); i++ {
				switch {
				case i >= len(got):
					t.Errorf("missing problem %+v", tc.want[i])
				case i >= len(tc.want):
					t.Errorf("unexpected problem: %v", got[i])
				case got[i].Role != tc.want[i].role || got[i].Index != tc.want[i].index || !strings.Contains(got[i].Problem, tc.want[i].text):
					t.Errorf("problem %d: got %q, want role %s index %d containing %q", i, got[i], tc.want[i].role, tc.want[i].index, tc.want[i].text)
				}
			}
		})
	}
}

func TestValidateVersion(t *testing.T) {
	for _, v := range []int{0, 2} {
		f := &File{Version: v}
		err := f.Validate()
		if err == nil || !strings.Contains(err.Error(), "is not supported") {
			t.Errorf("version %d: got %v", v, err)
		}
	}
}

func TestRuleErrorText(t *testing.T) {
	if got, want := (&RuleError{Role: "raw", Index: 2, Problem: "p"}).Error(), "buckets.raw.rules[2]: p"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := (&RuleError{Role: "tmp", Index: -1, Problem: "p"}).Error(), "buckets.tmp: p"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
