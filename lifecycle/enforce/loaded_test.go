package enforce

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/policy"
)

// TestDataAwareDeletion: a raw object past 400 days is deleted only when
// its lineage is done, its curated objects exist and each of its days was
// loaded after it was processed; otherwise it is held, saying why, and
// still moves to Coldline.
func TestDataAwareDeletion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	fin := time.Date(2026, 2, 1, 12, 0, 0, 0, time.UTC)
	type out struct {
		day     string
		missing bool
	}
	cases := []struct {
		name    string
		object  string
		status  string // "" for no lineage
		outputs []out
		days    []string // Days beyond the outputs'
		noFin   bool
		oldGen  bool // the lineage is of a generation since replaced
		held    string
	}{
		{name: "no lineage", object: "robot=R001/date=2026-02-01/01.csv", held: "lineage missing"},
		{name: "failed", object: "robot=R001/date=2026-02-01/02.csv", status: lineage.StatusFailed, held: "lineage failed"},
		{name: "processing", object: "robot=R001/date=2026-02-01/03.csv", status: lineage.StatusProcessing, held: `lineage "processing", not done`},
		{name: "retrying", object: "robot=R001/date=2026-02-01/04.csv", status: lineage.StatusRetrying, held: `lineage "retrying", not done`},
		{name: "output missing", object: "robot=R001/date=2026-02-01/05.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-05", missing: true}}, held: "missing"},
		{name: "day not loaded", object: "robot=R001/date=2026-02-01/06.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-06"}}, held: "day 2026-01-06 not loaded"},
		{name: "loaded before processing", object: "robot=R001/date=2026-02-01/07.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-07"}}, held: "day 2026-01-07 not loaded after processing"},
		{name: "loaded as processing finished", object: "robot=R001/date=2026-02-01/08.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-08"}}, held: "day 2026-01-08 not loaded after processing"},
		{name: "one of two days not loaded after", object: "robot=R001/date=2026-02-01/09.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-10"}, {day: "2026-01-07"}}, held: "day 2026-01-07 not loaded after processing"},
		{name: "loaded", object: "robot=R001/date=2026-02-01/10.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-10"}, {day: "2026-01-11"}}},
		{name: "every row quarantined", object: "robot=R001/date=2026-02-01/11.csv", status: lineage.StatusDone},
		{name: "chunk loaded", object: "robot=R002/date=2026-02-01/db/results.db.csv.a1.0-512.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-11"}}},
		{name: "chunk without lineage", object: "robot=R002/date=2026-02-01/db/results.db.csv.a1.512-900.csv", held: "lineage missing"},
		{name: "stray name", object: "stray.txt", held: "outside the raw layout"},
		{name: "lineage of a replaced generation", object: "robot=R001/date=2026-02-01/15.csv", status: lineage.StatusDone,
			oldGen: true, held: "lineage missing"},
		{name: "lineage day not loaded", object: "robot=R001/date=2026-02-01/16.csv", status: lineage.StatusDone,
			outputs: []out{{day: "2026-01-10"}}, days: []string{"2026-01-06"}, held: "day 2026-01-06 not loaded"},
		{name: "done without finish time", object: "robot=R001/date=2026-02-01/17.csv", status: lineage.StatusDone,
			noFin: true, held: "without a finish time"},
	}
	f.dayLoad("2026-01-05", fin.Add(time.Hour))
	f.dayLoad("2026-01-07", fin.Add(-time.Hour))
	f.dayLoad("2026-01-08", fin)
	f.dayLoad("2026-01-10", fin.Add(time.Nanosecond*1000)) // Firestore keeps microseconds
	f.dayLoad("2026-01-11", fin.Add(48*time.Hour))

	var wantDone []string
	for _, c := range cases {
		a := f.put(f.raw(), c.object, put{})
		gen := a.Generation
		if c.oldGen {
			gen = f.put(f.raw(), c.object, put{data: "replaced"}).Generation
			gen, a.Generation = a.Generation, gen
		}
		if c.held == "" {
			wantDone = append(wantDone, "delete raw/"+c.object)
		} else {
			wantDone = append(wantDone, "set_storage_class raw/"+c.object+" COLDLINE")
		}
		if c.status == "" {
			continue
		}
		ing := lineage.Ingestion{Bucket: f.raw(), Object: c.object, Generation: gen, Status: c.status, FinishedAt: fin,
			Outputs: []lineage.Output{}, Days: slices.Clone(c.days)}
		if c.noFin {
			ing.FinishedAt = time.Time{}
		}
		for _, o := range c.outputs {
			cur, err := names.CuratedObject(c.object, gen, civilDate(o.day))
			if err != nil {
				t.Fatal(err)
			}
			ing.Outputs = append(ing.Outputs, lineage.Output{Bucket: f.curated(), Object: cur, Day: o.day, Rows: 1})
			ing.Days = append(ing.Days, o.day)
			if !o.missing {
				f.put(f.curated(), cur, put{class: policy.Archive}) // no curated rule applies
			}
		}
		f.lineage(ing)
	}

	rep := f.run(policy.Default(), Options{Now: f.at(401), PageSize: 5})
	sameStrings(t, "done", keys(f, rep.Done), wantDone)
	heldWhy := map[string]string{}
	for _, h := range rep.Held {
		heldWhy[h.Object] = h.Why
	}
	for _, c := range cases {
		a := f.attrs(f.raw(), c.object)
		why, held := heldWhy[c.object]
		switch {
		case c.held == "" && (a != nil || held):
			t.Errorf("%s: not deleted (held: %q)", c.name, why)
		case c.held != "" && (a == nil || !held):
			t.Errorf("%s: deleted, want held for %q", c.name, c.held)
		case c.held != "" && !strings.Contains(why, c.held):
			t.Errorf("%s: held for %q, want %q", c.name, why, c.held)
		}
	}
	if len(rep.Held) != len(heldWhy) || len(rep.Errors) != 0 {
		t.Errorf("held %d (%d objects), errors %q", len(rep.Held), len(heldWhy), rep.Errors)
	}
}

// scenario is one random raw object of the property test and what it was
// given.
type scenario struct {
	object    string
	lineage   bool
	status    string
	wrongGen  bool
	noFinish  bool
	finished  time.Time
	outputs   []lineage.Output
	missing   []bool
	extraDays []string
}

// TestPropertyNeverDeletesUnloaded generates random deployments (lineage
// status, missing outputs, day loads before, at, after the processing or
// missing, ages on both sides of 400 days) and checks that the enforcer
// deletes a raw object exactly when an independent reading of the rules
// says its data is loaded, and never otherwise. A second run after every
// missing output appears and every day is reloaded must then delete exactly
// the objects whose lineage is good, found through the generation first
// uploaded although the first run rewrote the held ones.
func TestPropertyNeverDeletesUnloaded(t *testing.T) {
	t.Parallel()
	const trials, objects = 6, 60
	ages := []int{30, 100, 399, 400, 401, 800}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	pool := []string{"2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-06"}
	for trial := range trials {
		t.Run(fmt.Sprintf("trial%d", trial), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(20260301, uint64(trial)))
			f := newFixture(t, false)
			age := ages[trial%len(ages)]

			// Day loads: missing, or staged somewhere around the
			// processing (which finishes within a day of base).
			staged := map[string]time.Time{}
			for _, d := range pool {
				if rng.IntN(5) == 0 {
					continue
				}
				staged[d] = base.Add(time.Duration(rng.IntN(48)-12) * time.Hour)
				f.dayLoad(d, staged[d])
			}

			scen := make([]*scenario, objects)
			gens := map[string]int64{}
			for i := range scen {
				s := &scenario{object: fmt.Sprintf("robot=R%03d/date=2026-03-01/f%02d.csv", 1+rng.IntN(3), i)}
				if rng.IntN(4) == 0 {
					s.object = fmt.Sprintf("robot=R004/date=2026-03-01/db/results.db.csv.s%d.0-%d.csv", i, 100+i)
				}
				scen[i] = s
				gen := f.put(f.raw(), s.object, put{}).Generation
				gens[s.object] = gen
				if s.lineage = rng.IntN(10) != 0; !s.lineage {
					continue
				}
				s.status = []string{lineage.StatusDone, lineage.StatusDone, lineage.StatusDone, lineage.StatusDone,
					lineage.StatusFailed, lineage.StatusProcessing, lineage.StatusRetrying}[rng.IntN(7)]
				s.wrongGen = rng.IntN(20) == 0
				s.noFinish = rng.IntN(20) == 0
				if !s.noFinish {
					s.finished = base.Add(time.Duration(rng.IntN(24*60)) * time.Minute)
				}
				if d := pool[rng.IntN(len(pool))]; !s.noFinish && rng.IntN(6) == 0 && !staged[d].IsZero() {
					s.finished = staged[d] // a load staged the very instant processing finished
				}
				days := []string{}
				for range rng.IntN(4) {
					d := pool[rng.IntN(len(pool))]
					if slices.Contains(days, d) {
						continue
					}
					days = append(days, d)
					cur, _ := names.CuratedObject(s.object, gen, civilDate(d))
					s.outputs = append(s.outputs, lineage.Output{Bucket: f.curated(), Object: cur, Day: d, Rows: 1})
					miss := rng.IntN(8) == 0
					s.missing = append(s.missing, miss)
					if !miss {
						f.put(f.curated(), cur, put{class: policy.Archive})
					}
				}
				if rng.IntN(10) == 0 {
					s.extraDays = []string{pool[rng.IntN(len(pool))]}
				}
				lgen := gen
				if s.wrongGen {
					lgen = gen + 1
				}
				id, _ := names.RawID(s.object, gen)
				ing := lineage.Ingestion{RawID: id, Bucket: f.raw(), Object: s.object, Generation: lgen, Status: s.status,
					FinishedAt: s.finished, Outputs: s.outputs, Days: append(slices.Clone(days), s.extraDays...)}
				if _, err := f.direct.Firestore.Collection(names.CollectionIngestions).Doc(id).Set(f.ctx, ing); err != nil {
					t.Fatal(err)
				}
			}

			// The expectation, read from the scenario alone.
			lineageGood := func(s *scenario) bool {
				return s.lineage && s.status == lineage.StatusDone && !s.wrongGen && !s.noFinish
			}
			loaded := func(s *scenario, staged map[string]time.Time, missingCounts bool) bool {
				if !lineageGood(s) {
					return false
				}
				for i, o := range s.outputs {
					if missingCounts && s.missing[i] {
						return false
					}
					if st, ok := staged[o.Day]; !ok || !st.After(s.finished) {
						return false
					}
				}
				for _, d := range s.extraDays {
					if st, ok := staged[d]; !ok || !st.After(s.finished) {
						return false
					}
				}
				return true
			}
			check := func(rep *Report, deletable func(*scenario) bool, phase string) {
				held := map[string]bool{}
				for _, h := range rep.Held {
					held[h.Object] = true
				}
				for _, s := range scen {
					want := age >= 400 && deletable(s)
					exists := f.attrs(f.raw(), s.object) != nil
					switch {
					case want && exists:
						t.Errorf("%s: %s is loaded (%+v) and %d days old but was not deleted", phase, s.object, *s, age)
					case !want && !exists:
						t.Fatalf("%s: %s was deleted although its data is not loaded (%+v, staged %v, age %d)",
							phase, s.object, *s, staged, age)
					case age >= 400 && !want && !held[s.object]:
						t.Errorf("%s: %s neither deleted nor held", phase, s.object)
					}
				}
				if len(rep.Errors) != 0 {
					t.Errorf("%s: errors %q", phase, rep.Errors)
				}
			}

			rep := f.run(policy.Default(), Options{Now: f.at(age), PageSize: 1 + rng.IntN(10), Workers: 1 + rng.IntN(8)})
			check(rep, func(s *scenario) bool { return loaded(s, staged, true) }, "first run")

			// Every output appears, every day is loaded again after all
			// processing.
			for _, s := range scen {
				for i, o := range s.outputs {
					if s.missing[i] {
						f.put(f.curated(), o.Object, put{class: policy.Archive})
					}
				}
			}
			reloaded := map[string]time.Time{}
			for _, d := range pool {
				reloaded[d] = base.Add(72 * time.Hour)
				f.dayLoad(d, reloaded[d])
			}
			rep = f.run(policy.Default(), Options{Now: f.at(age)})
			check(rep, func(s *scenario) bool { return loaded(s, reloaded, false) }, "second run")
		})
	}
}
