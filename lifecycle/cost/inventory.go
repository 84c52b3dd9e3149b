package cost

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/lifecycle/policy"
)

const day = 24 * time.Hour

// listPageSize is how many objects one list request asks for (the GCS
// maximum).
const listPageSize = 1000

// Band is an age band of the inventory: days since creation.
type Band string

// The age bands, youngest first: [0,30), [30,90), [90,365) and 365 days or
// more.
const (
	Band0to30   Band = "0-30"
	Band30to90  Band = "30-90"
	Band90to365 Band = "90-365"
	Band365Plus Band = "365+"
)

// Bands returns the age bands, youngest first.
func Bands() []Band { return []Band{Band0to30, Band30to90, Band90to365, Band365Plus} }

// BandOf returns the band of an object that is ageDays whole days old.
func BandOf(ageDays int) Band {
	switch {
	case ageDays < 30:
		return Band0to30
	case ageDays < 90:
		return Band30to90
	case ageDays < 365:
		return Band90to365
	}
	return Band365Plus
}

// Cell is the inventory of one bucket, storage class and age band. Objects
// and Bytes count every version; the Noncurrent fields count the noncurrent
// versions among them.
type Cell struct {
	Role              string       `json:"role"`
	Bucket            string       `json:"bucket"`
	Class             policy.Class `json:"class"`
	Band              Band         `json:"age_band"`
	Objects           int64        `json:"objects"`
	Bytes             int64        `json:"bytes"`
	NoncurrentObjects int64        `json:"noncurrent_objects"`
	NoncurrentBytes   int64        `json:"noncurrent_bytes"`
}

// Inventory is what the policy's buckets hold at one moment. Beside the
// cells it keeps cohorts: objects that every rule of their bucket treats
// alike (same class, state, age in whole days, and the same answers to the
// rules' prefix, suffix, custom-time and version conditions), which is what
// the projection ages. Build one with TakeInventory, or with NewInventory
// and Add.
type Inventory struct {
	// Prefix is the deployment's bucket prefix.
	Prefix string
	// Taken is the moment ages are counted from.
	Taken time.Time

	roles   map[string]roleShape
	cells   map[cellKey]*Cell
	cohorts []cohort
	index   map[cohortKey]int
}

type cellKey struct {
	role  string
	class policy.Class
	band  Band
}

// cohortKey holds what a rule can tell objects apart by. Fields the bucket's
// rules never look at stay -1 (or empty) so that they do not split cohorts.
type cohortKey struct {
	role          string
	class         policy.Class
	live          bool
	age           int
	customAge     int
	noncurrentAge int
	newer         int
	names         string // which of the rules' prefixes and suffixes the name matches
}

// cohort is a set of objects that every rule treats alike, with one of them
// (its times rounded to whole days before Taken) standing for all.
type cohort struct {
	role    string
	obj     policy.Object
	objects int64
	bytes   int64
}

// roleShape is what the rules of one bucket look at.
type roleShape struct {
	bucket     string
	rules      policy.Bucket
	customTime bool
	newer      bool
	prefixes   []string
	suffixes   []string
}

// NewInventory returns an empty inventory of f's buckets in the deployment
// with the given prefix, ages counted at now. Report on it with the same
// policy file: cohorts are told apart by what f's rules look at.
func NewInventory(f *policy.File, prefix string, now time.Time) *Inventory {
	inv := &Inventory{
		Prefix: prefix,
		Taken:  now,
		roles:  make(map[string]roleShape),
		cells:  make(map[cellKey]*Cell),
		index:  make(map[cohortKey]int),
	}
	for role, b := range f.Buckets {
		bucket, err := policy.BucketName(prefix, role)
		if err != nil {
			bucket = prefix + "-" + role
		}
		s := roleShape{bucket: bucket, rules: b}
		for _, r := range b.Rules {
			c := r.Condition
			s.customTime = s.customTime || c.DaysSinceCustomTime != nil
			s.newer = s.newer || c.NumNewerVersions != nil
			s.prefixes = append(s.prefixes, c.MatchesPrefix...)
			s.suffixes = append(s.suffixes, c.MatchesSuffix...)
		}
		slices.Sort(s.prefixes)
		s.prefixes = slices.Compact(s.prefixes)
		slices.Sort(s.suffixes)
		s.suffixes = slices.Compact(s.suffixes)
		inv.roles[role] = s
	}
	return inv
}

// Roles returns the bucket roles of the inventory, in policy.Roles order
// and then by name.
func (inv *Inventory) Roles() []string { return orderRoles(slices.Collect(maps.Keys(inv.roles))) }

func orderRoles(roles []string) []string {
	rank := func(r string) int {
		if i := slices.Index(policy.Roles(), r); i >= 0 {
			return i
		}
		return len(policy.Roles())
	}
	slices.SortFunc(roles, func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	})
	return roles
}

// wholeDays is the number of whole days from t to now; 0 when t is later.
func wholeDays(now, t time.Time) int {
	if !t.Before(now) {
		return 0
	}
	return int(now.Sub(t) / day)
}

// normalClass maps the classes GCS prices as Standard to STANDARD: an empty
// class and the legacy REGIONAL, MULTI_REGIONAL and
// DURABLE_REDUCED_AVAILABILITY.
func normalClass(c policy.Class) policy.Class {
	switch c {
	case "", "REGIONAL", "MULTI_REGIONAL", "DURABLE_REDUCED_AVAILABILITY":
		return policy.Standard
	}
	return c
}

// Add counts one object (one version) of the bucket playing role. o.Size is
// its size; o.Live, o.Noncurrent and o.NewerVersions say which version it is.
func (inv *Inventory) Add(role string, o policy.Object) error {
	s, ok := inv.roles[role]
	if !ok {
		return fmt.Errorf("inventory: role %q is not in the policy", role)
	}
	if o.Bucket == "" {
		o.Bucket = s.bucket
	}
	o.Class = normalClass(o.Class)
	age := wholeDays(inv.Taken, o.Created)

	ck := cellKey{role: role, class: o.Class, band: BandOf(age)}
	c := inv.cells[ck]
	if c == nil {
		c = &Cell{Role: role, Bucket: o.Bucket, Class: o.Class, Band: ck.band}
		inv.cells[ck] = c
	}
	c.Objects++
	c.Bytes += o.Size
	if !o.Live {
		c.NoncurrentObjects++
		c.NoncurrentBytes += o.Size
	}

	k := cohortKey{role: role, class: o.Class, live: o.Live, age: age, customAge: -1, noncurrentAge: -1, newer: -1}
	if s.customTime && !o.CustomTime.IsZero() {
		k.customAge = wholeDays(inv.Taken, o.CustomTime)
	}
	if !o.Live {
		k.noncurrentAge = wholeDays(inv.Taken, o.Noncurrent)
	}
	if s.newer {
		k.newer = o.NewerVersions
	}
	var names strings.Builder
	for _, p := range s.prefixes {
		names.WriteString(bit(strings.HasPrefix(o.Name, p)))
	}
	for _, sfx := range s.suffixes {
		names.WriteString(bit(strings.HasSuffix(o.Name, sfx)))
	}
	k.names = names.String()

	if i, ok := inv.index[k]; ok {
		inv.cohorts[i].objects++
		inv.cohorts[i].bytes += o.Size
		return nil
	}
	rep := policy.Object{
		Bucket:        o.Bucket,
		Name:          o.Name,
		Generation:    o.Generation,
		Size:          o.Size,
		Class:         o.Class,
		Created:       inv.Taken.Add(-time.Duration(age) * day),
		Live:          o.Live,
		NewerVersions: max(k.newer, 0),
	}
	if k.customAge >= 0 {
		rep.CustomTime = inv.Taken.Add(-time.Duration(k.customAge) * day)
	}
	if k.noncurrentAge >= 0 {
		rep.Noncurrent = inv.Taken.Add(-time.Duration(k.noncurrentAge) * day)
	}
	inv.index[k] = len(inv.cohorts)
	inv.cohorts = append(inv.cohorts, cohort{role: role, obj: rep, objects: 1, bytes: o.Size})
	return nil
}

func bit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Cells returns the inventory's cells ordered by role (policy.Roles order),
// class (warm to cold) and band (young to old).
func (inv *Inventory) Cells() []Cell {
	out := make([]Cell, 0, len(inv.cells))
	for _, c := range inv.cells {
		out = append(out, *c)
	}
	roles := inv.Roles()
	slices.SortFunc(out, func(a, b Cell) int {
		return cmp.Or(
			cmp.Compare(slices.Index(roles, a.Role), slices.Index(roles, b.Role)),
			compareClass(a.Class, b.Class),
			cmp.Compare(slices.Index(Bands(), a.Band), slices.Index(Bands(), b.Band)),
		)
	})
	return out
}

// compareClass orders known classes warm to cold, then unknown ones by name.
func compareClass(a, b policy.Class) int {
	ra, rb := a.Rank(), b.Rank()
	if ra < 0 {
		ra = 99
	}
	if rb < 0 {
		rb = 99
	}
	return cmp.Or(cmp.Compare(ra, rb), strings.Compare(string(a), string(b)))
}

// Totals returns the bytes and object counts of every version in every
// bucket, keyed by bucket name.
func (inv *Inventory) Totals() (bytes, objects map[string]int64) {
	bytes, objects = make(map[string]int64), make(map[string]int64)
	for _, role := range inv.Roles() {
		b := inv.roles[role].bucket
		bytes[b], objects[b] = 0, 0
	}
	for _, c := range inv.cells {
		bytes[c.Bucket] += c.Bytes
		objects[c.Bucket] += c.Objects
	}
	return bytes, objects
}

// MarshalJSON writes the prefix, the time and the cells.
func (inv *Inventory) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Prefix string    `json:"prefix"`
		Taken  time.Time `json:"taken"`
		Cells  []Cell    `json:"cells"`
	}{inv.Prefix, inv.Taken, inv.Cells()})
}

// TakeInventory lists every version of every object in the buckets of f's
// roles, page by page, and counts them at now. Memory grows with the number
// of cohorts, not of objects.
func TakeInventory(ctx context.Context, client *storage.Client, f *policy.File, prefix string, now time.Time) (*Inventory, error) {
	return takeInventory(ctx, client, f, prefix, now, listPageSize)
}

func takeInventory(ctx context.Context, client *storage.Client, f *policy.File, prefix string, now time.Time, pageSize int) (*Inventory, error) {
	inv := NewInventory(f, prefix, now)
	for _, role := range inv.Roles() {
		if _, err := policy.BucketName(prefix, role); err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		if err := inv.scan(ctx, client, role, pageSize); err != nil {
			return nil, err
		}
	}
	return inv, nil
}

// scan lists one bucket. Versions of one name come together, so a name's
// versions are held until the next name to count their newer versions.
func (inv *Inventory) scan(ctx context.Context, client *storage.Client, role string, pageSize int) error {
	bucket := inv.roles[role].bucket
	q := &storage.Query{Versions: true}
	if err := q.SetAttrSelection([]string{"Bucket", "Name", "Generation", "Size", "StorageClass", "Created", "CustomTime", "Deleted"}); err != nil {
		return fmt.Errorf("list gs://%s: %w", bucket, err)
	}
	it := client.Bucket(bucket).Objects(ctx, q)
	it.PageInfo().MaxSize = pageSize
	var group []policy.Object
	flush := func() error {
		// Newest generation first: its index is its count of newer versions.
		slices.SortFunc(group, func(a, b policy.Object) int { return cmp.Compare(b.Generation, a.Generation) })
		for i, o := range group {
			o.NewerVersions = i
			if err := inv.Add(role, o); err != nil {
				return err
			}
		}
		group = group[:0]
		return nil
	}
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return fmt.Errorf("list gs://%s: %w", bucket, err)
		}
		o := policy.ObjectFrom(a)
		if len(group) > 0 && group[0].Name != o.Name {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, o)
	}
	return flush()
}
