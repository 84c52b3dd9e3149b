package cost

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/labplatform/platform/lifecycle/policy"
)

const (
	gib = 1 << 30
	// monthDays is the length of a projected month; at-rest prices are per
	// month, so a day costs 1/monthDays of the monthly price.
	monthDays = 30
	// defaultMonths is the projection's length when none is given.
	defaultMonths = 12
	// defaultObjectSize sizes new objects when the inventory has none of a
	// role to average: robots export files of about 100 MB.
	defaultObjectSize = 100 << 20
)

// Options are the optional settings of NewReport.
type Options struct {
	// GrowthPerMonth adds, at the start of every projected month, this many
	// bytes of new STANDARD objects to the bucket of each role (both
	// projections). Default: none, the projection is of the current
	// inventory only. New objects have no name, so rules with prefix or
	// suffix conditions never match them.
	GrowthPerMonth map[string]int64
	// GrowthObjectSize is the size of one new object, which counts the
	// operations their transitions cost. Default: the role's average live
	// object in the inventory, else 100 MiB.
	GrowthObjectSize int64
}

// Report is the storage cost report.
type Report struct {
	Prefix string `json:"prefix"`
	// Generated is the moment the projection starts from.
	Generated   time.Time `json:"generated"`
	Prices      PriceInfo `json:"prices"`
	Assumptions []string  `json:"assumptions"`
	// Warnings name what the report could not price.
	Warnings  []string `json:"warnings,omitempty"`
	Inventory []Cell   `json:"inventory"`
	// Current is the monthly at-rest cost of the inventory as it is.
	Current        Estimate         `json:"current_monthly"`
	Months         int              `json:"months"`
	GrowthPerMonth map[string]int64 `json:"growth_per_month,omitempty"`
	// WithPolicies ages the inventory under the policies; WithoutPolicies
	// leaves every object where it is.
	WithPolicies    Projection `json:"with_policies"`
	WithoutPolicies Projection `json:"without_policies"`
}

// PriceInfo says which price table the report used.
type PriceInfo struct {
	Source   string `json:"source"`
	AsOf     string `json:"as_of"`
	Region   string `json:"region"`
	Currency string `json:"currency"`
}

// Estimate is a monthly at-rest cost.
type Estimate struct {
	Total   float64                  `json:"total"`
	ByClass map[policy.Class]float64 `json:"by_class"`
	ByRole  map[string]float64       `json:"by_role"`
	Bytes   map[policy.Class]int64   `json:"bytes_by_class"`
}

// Projection is a month-by-month cost projection.
type Projection struct {
	Months []Month `json:"months"`
	Total  Cost    `json:"total"`
}

// Cost splits an amount by what it pays for.
type Cost struct {
	AtRest        float64 `json:"at_rest"`
	Operations    float64 `json:"operations"`
	Retrieval     float64 `json:"retrieval"`
	EarlyDeletion float64 `json:"early_deletion"`
	Total         float64 `json:"total"`
}

func (c *Cost) add(o Cost) {
	c.AtRest += o.AtRest
	c.Operations += o.Operations
	c.Retrieval += o.Retrieval
	c.EarlyDeletion += o.EarlyDeletion
	c.Total += o.Total
}

// Month is one projected month of monthDays days, [Start, End).
type Month struct {
	Month int       `json:"month"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Cost  Cost      `json:"cost"`
	// ByClass splits the cost by class: at rest by the class stored,
	// operations by the class written, retrieval and early deletion by the
	// class left.
	ByClass map[policy.Class]Cost `json:"by_class"`
	// BytesByClass is what is stored at the end of the month.
	BytesByClass map[policy.Class]int64 `json:"bytes_by_class"`
	// Transitions and Deletions count objects.
	Transitions int64 `json:"transitions"`
	Deletions   int64 `json:"deletions"`
}

// NewReport prices inv (taken with policy file f) and projects its cost over
// months months (default 12) from now, normally inv.Taken, with and without
// f's policies.
func NewReport(inv *Inventory, f *policy.File, prices Prices, now time.Time, months int, opts Options) *Report {
	if months <= 0 {
		months = defaultMonths
	}
	r := &Report{
		Prefix:    inv.Prefix,
		Generated: now,
		Prices:    PriceInfo{Source: prices.Source, AsOf: prices.AsOf, Region: prices.Region, Currency: prices.Currency},
		Inventory: inv.Cells(),
		Months:    months,
	}
	if len(opts.GrowthPerMonth) > 0 {
		r.GrowthPerMonth = maps.Clone(opts.GrowthPerMonth)
	}
	r.Assumptions = assumptions(opts)

	r.Current = Estimate{ByClass: map[policy.Class]float64{}, ByRole: map[string]float64{}, Bytes: map[policy.Class]int64{}}
	unpriced := map[policy.Class]int64{}
	for _, c := range inv.cohorts {
		p, ok := prices.Classes[c.obj.Class]
		if !ok {
			unpriced[c.obj.Class] += c.bytes
		}
		v := float64(c.bytes) / gib * p.StoragePerGiBMonth
		r.Current.Total += v
		r.Current.ByClass[c.obj.Class] += v
		r.Current.ByRole[c.role] += v
		r.Current.Bytes[c.obj.Class] += c.bytes
	}
	for _, c := range slices.SortedFunc(maps.Keys(unpriced), compareClass) {
		r.Warnings = append(r.Warnings, fmt.Sprintf("no price for storage class %s: %d bytes counted at 0", c, unpriced[c]))
	}
	for role := range opts.GrowthPerMonth {
		if _, ok := f.Buckets[role]; !ok {
			r.Warnings = append(r.Warnings, fmt.Sprintf("growth for role %q, which has no bucket in the policy: ignored", role))
		}
	}
	slices.Sort(r.Warnings)

	sim := simulation{f: f, prices: prices, now: now, months: months, growth: growth(inv, f, opts)}
	r.WithPolicies = sim.run(inv, true)
	r.WithoutPolicies = sim.run(inv, false)
	return r
}

func assumptions(opts Options) []string {
	data := "No new data: the projection ages the current inventory only."
	if len(opts.GrowthPerMonth) > 0 {
		data = "New data: at the start of every month, growth_per_month bytes of new STANDARD objects are added to each role's bucket (uploads themselves are not charged); nothing else is added."
	}
	return []string{
		data,
		"Months are 30 days; a day at rest costs 1/30 of the monthly price per GiB.",
		"With policies: every rule applies as `lifecycle enforce` would, enforcer-only rules included; a raw delete that requires loaded data assumes the data is loaded by then. Without policies: every object stays where it is.",
		"A transition is a rewrite: one Class A operation per object at the destination class's rate, retrieval of the bytes read when the source class is colder than Standard, and the early-deletion charge when the object leaves its class before the minimum storage duration. (GCS's own lifecycle SetStorageClass is, to our knowledge of its documentation, charged the Class A operation without retrieval or early-deletion fees: where GCS moves the objects, read those two charges as an upper bound.)",
		"A delete costs no operation; an object deleted before its class's minimum storage duration pays the remaining days at that class's at-rest price.",
		"An inventoried object is taken to have been in its class since it was created (GCS does not report when a lifecycle rule changed it), so early-deletion charges on objects moved before the inventory are a lower bound.",
		"Noncurrent versions never get newer versions during the projection; ages are whole days since creation, as GCS counts them.",
	}
}

// growthPlan is one role's monthly new data.
type growthPlan struct {
	role    string
	bucket  string
	bytes   int64
	objects int64
}

func growth(inv *Inventory, f *policy.File, opts Options) []growthPlan {
	var out []growthPlan
	for _, role := range orderRoles(slices.Collect(maps.Keys(opts.GrowthPerMonth))) {
		b := opts.GrowthPerMonth[role]
		if _, ok := f.Buckets[role]; !ok || b <= 0 {
			continue
		}
		size := opts.GrowthObjectSize
		if size <= 0 {
			var n, bytes int64
			for _, c := range inv.cohorts {
				if c.role == role && c.obj.Live {
					n += c.objects
					bytes += c.bytes
				}
			}
			size = defaultObjectSize
			if n > 0 && bytes > 0 {
				size = max(bytes/n, 1)
			}
		}
		bucket, err := policy.BucketName(inv.Prefix, role)
		if err != nil {
			bucket = inv.roles[role].bucket
		}
		out = append(out, growthPlan{role: role, bucket: bucket, bytes: b, objects: (b + size - 1) / size})
	}
	return out
}

type simulation struct {
	f      *policy.File
	prices Prices
	now    time.Time
	months int
	growth []growthPlan
}

// simCohort is a cohort on its way through the projection.
type simCohort struct {
	role    string
	obj     policy.Object
	objects int64
	bytes   int64
	// entered is the day (from the start; negative before it) the cohort
	// entered its current class.
	entered int
	gone    bool
}

// run projects the inventory day by day: at each day the policies decide
// first (with policies), then the day at rest is charged.
func (s simulation) run(inv *Inventory, withPolicies bool) Projection {
	cohorts := make([]simCohort, 0, len(inv.cohorts))
	for _, c := range inv.cohorts {
		// Days since creation at now: the class is taken to date from then.
		age := wholeDays(s.now, c.obj.Created)
		cohorts = append(cohorts, simCohort{role: c.role, obj: c.obj, objects: c.objects, bytes: c.bytes, entered: -age})
	}
	p := Projection{Months: make([]Month, s.months)}
	for m := range p.Months {
		month := &p.Months[m]
		*month = Month{
			Month:        m + 1,
			Start:        s.now.Add(time.Duration(m*monthDays) * day),
			End:          s.now.Add(time.Duration((m+1)*monthDays) * day),
			ByClass:      map[policy.Class]Cost{},
			BytesByClass: map[policy.Class]int64{},
		}
		for _, g := range s.growth {
			cohorts = append(cohorts, simCohort{
				role:    g.role,
				obj:     policy.Object{Bucket: g.bucket, Class: policy.Standard, Created: month.Start, Live: true},
				objects: g.objects,
				bytes:   g.bytes,
				entered: m * monthDays,
			})
		}
		for d := m * monthDays; d < (m+1)*monthDays; d++ {
			t := s.now.Add(time.Duration(d) * day)
			for i := range cohorts {
				c := &cohorts[i]
				if c.gone {
					continue
				}
				if withPolicies {
					s.decide(month, c, d, t)
					if c.gone {
						continue
					}
				}
				s.charge(month, c.obj.Class, Cost{AtRest: gibs(c.bytes) * s.prices.Classes[c.obj.Class].StoragePerGiBMonth / monthDays})
			}
		}
		for _, c := range cohorts {
			if !c.gone {
				month.BytesByClass[c.obj.Class] += c.bytes
			}
		}
		p.Total.add(month.Cost)
	}
	return p
}

// decide carries out what the policies do to c on day d (time t).
func (s simulation) decide(month *Month, c *simCohort, d int, t time.Time) {
	rule, ok := s.f.Buckets[c.role].Decide(c.obj, t, true)
	if !ok {
		return
	}
	from := c.obj.Class
	switch rule.Action.Type {
	case policy.ActionDelete:
		s.charge(month, from, Cost{EarlyDeletion: s.earlyDeletion(c, d)})
		month.Deletions += c.objects
		c.gone = true
	case policy.ActionSetStorageClass:
		to := rule.Action.StorageClass
		if to == from {
			return
		}
		s.charge(month, to, Cost{Operations: float64(c.objects) * s.prices.Classes[to].ClassAPer10k / 10000})
		if from != policy.Standard {
			s.charge(month, from, Cost{Retrieval: gibs(c.bytes) * s.prices.Classes[from].RetrievalPerGiB})
		}
		s.charge(month, from, Cost{EarlyDeletion: s.earlyDeletion(c, d)})
		month.Transitions += c.objects
		c.obj.Class = to
		c.entered = d
	}
}

// earlyDeletion is the charge for c leaving its class on day d: the days
// short of the class's minimum storage duration, at its at-rest price.
func (s simulation) earlyDeletion(c *simCohort, d int) float64 {
	p := s.prices.Classes[c.obj.Class]
	short := p.MinStorageDays - (d - c.entered)
	if short <= 0 {
		return 0
	}
	return gibs(c.bytes) * p.StoragePerGiBMonth * float64(short) / monthDays
}

func (s simulation) charge(month *Month, class policy.Class, c Cost) {
	c.Total = c.AtRest + c.Operations + c.Retrieval + c.EarlyDeletion
	if c.Total == 0 {
		return
	}
	cc := month.ByClass[class]
	cc.add(c)
	month.ByClass[class] = cc
	month.Cost.add(c)
}

func gibs(b int64) float64 { return float64(b) / gib }
