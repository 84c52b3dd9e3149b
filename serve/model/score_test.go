package model

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/serve"
)

// Scores of testModel, by hand. Features, in model order:
//
//	2160-0.last:  coefficient 2,    center 1,   scale 0.5, impute center
//	2345-7.mean:  coefficient −0.5, center 100, scale 20,  impute constant 80
//	2160-0.trend: coefficient 1,    center 0,   scale 0.1, impute constant 0.05
//
// intercept −1; bands low [0, 0.2), medium [0.2, 0.5), high [0.5, 1].
func TestScore(t *testing.T) {
	m := testModel()
	c := func(feature string, value, coef, contrib float64, imputed bool) Contribution {
		return Contribution{Feature: feature, Value: value, Imputed: imputed, Coefficient: coef, Contribution: contrib}
	}
	for _, tc := range []struct {
		name     string
		features map[string]float64
		want     Score
	}{
		{
			// 2×(1.5−1)/0.5 = 2; −0.5×(120−100)/20 = −0.5; 1×(0.2−0)/0.1 = 2
			// logit = −1 + 2 − 0.5 + 2 = 2.5; 1/(1+e^−2.5) = 1/1.0820850 = 0.9241418
			name:     "every feature given",
			features: map[string]float64{"2160-0.last": 1.5, "2345-7.mean": 120, "2160-0.trend": 0.2},
			want: Score{Model: "test_model", Version: "v1", Score: 0.9241418, Band: "high", Logit: 2.5,
				Contributions: []Contribution{
					c("2160-0.last", 1.5, 2, 2, false), c("2345-7.mean", 120, -0.5, -0.5, false), c("2160-0.trend", 0.2, 1, 2, false),
				},
				Imputed: []string{}},
		},
		{
			// last imputed at its center: 0; mean imputed 80: −0.5×(80−100)/20 = 0.5;
			// trend 0: 0. logit = −1 + 0.5 = −0.5; e^−0.5/(1+e^−0.5) = 0.6065307/1.6065307 = 0.3775407
			name:     "center and constant imputation",
			features: map[string]float64{"2160-0.trend": 0},
			want: Score{Model: "test_model", Version: "v1", Score: 0.3775407, Band: "medium", Logit: -0.5,
				Contributions: []Contribution{
					c("2160-0.last", 1, 2, 0, true), c("2345-7.mean", 80, -0.5, 0.5, true), c("2160-0.trend", 0, 1, 0, false),
				},
				Imputed: []string{"2160-0.last", "2345-7.mean"}},
		},
		{
			// all imputed: 0 + 0.5 + 1×0.05/0.1 = 0.5 → logit 0, score 0.5,
			// exactly the lower edge of high (min inclusive).
			name:     "nothing given: score on a band edge",
			features: map[string]float64{},
			want: Score{Model: "test_model", Version: "v1", Score: 0.5, Band: "high", Logit: 0,
				Contributions: []Contribution{
					c("2160-0.last", 1, 2, 0, true), c("2345-7.mean", 80, -0.5, 0.5, true), c("2160-0.trend", 0.05, 1, 0.5, true),
				},
				Imputed: []string{"2160-0.last", "2345-7.mean", "2160-0.trend"}},
		},
		{
			// 2×(1001−1)/0.5 = 4000: sigmoid is exactly 1, in the last band (max 1 inclusive).
			name:     "score 1",
			features: map[string]float64{"2160-0.last": 1001, "2345-7.mean": 100, "2160-0.trend": 0},
			want: Score{Model: "test_model", Version: "v1", Score: 1, Band: "high", Logit: 3999,
				Contributions: []Contribution{
					c("2160-0.last", 1001, 2, 4000, false), c("2345-7.mean", 100, -0.5, 0, false), c("2160-0.trend", 0, 1, 0, false),
				},
				Imputed: []string{}},
		},
		{
			// 2×(−999−1)/0.5 = −4000: sigmoid is exactly 0, in the first band.
			name:     "score 0",
			features: map[string]float64{"2160-0.last": -999, "2345-7.mean": 100, "2160-0.trend": 0},
			want: Score{Model: "test_model", Version: "v1", Score: 0, Band: "low", Logit: -4001,
				Contributions: []Contribution{
					c("2160-0.last", -999, 2, -4000, false), c("2345-7.mean", 100, -0.5, 0, false), c("2160-0.trend", 0, 1, 0, false),
				},
				Imputed: []string{}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := m.Score(tc.features)
			if err != nil {
				t.Fatalf("Score: %v", err)
			}
			if math.Abs(got.Score-tc.want.Score) > 5e-8 || math.Abs(got.Logit-tc.want.Logit) > 1e-9 {
				t.Errorf("score %.8f logit %g, want %.7f, %g", got.Score, got.Logit, tc.want.Score, tc.want.Logit)
			}
			got.Score, got.Logit = tc.want.Score, tc.want.Logit
			for i := range got.Contributions {
				if i < len(tc.want.Contributions) && math.Abs(got.Contributions[i].Contribution-tc.want.Contributions[i].Contribution) < 1e-9 {
					got.Contributions[i].Contribution = tc.want.Contributions[i].Contribution
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Score:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestBandEdges(t *testing.T) {
	m := testModel()
	for _, tc := range []struct {
		score float64
		want  string
	}{
		{score: 0, want: "low"},
		{score: 0.1999999, want: "low"},
		{score: 0.2, want: "medium"},
		{score: 0.4999999, want: "medium"},
		{score: 0.5, want: "high"},
		{score: 0.9999999, want: "high"},
		{score: 1, want: "high"},
	} {
		if got := m.band(tc.score); got != tc.want {
			t.Errorf("band(%g) = %q, want %q", tc.score, got, tc.want)
		}
	}
}

func TestScoreRefusesBadFeatures(t *testing.T) {
	m := testModel()
	for _, tc := range []struct {
		name      string
		features  map[string]float64
		wantField string
		wantMsg   string
	}{
		{name: "unknown feature", features: map[string]float64{"2160-0.last": 1, "718-7.last": 13}, wantField: "features.718-7.last", wantMsg: "not a feature of model test_model v1"},
		{name: "NaN", features: map[string]float64{"2160-0.last": math.NaN()}, wantField: "features.2160-0.last", wantMsg: "not a finite number"},
		{name: "+Inf", features: map[string]float64{"2345-7.mean": math.Inf(1)}, wantField: "features.2345-7.mean", wantMsg: "not a finite number"},
		{name: "-Inf", features: map[string]float64{"2160-0.trend": math.Inf(-1)}, wantField: "features.2160-0.trend", wantMsg: "not a finite number"},
		{name: "overflowing logit", features: map[string]float64{"2160-0.last": math.MaxFloat64}, wantField: "features", wantMsg: "overflows"},
		{name: "first of several, by name", features: map[string]float64{"zz.last": 1, "aa.mean": 1}, wantField: "features.aa.mean", wantMsg: "not a feature"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := m.Score(tc.features)
			if _, ok := err.(*serve.InvalidError); !ok && len(tc.features) == 1 {
				t.Errorf("one problem: error is %T, want *serve.InvalidError itself", err)
			}
			var inv *serve.InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("Score = %+v, %v; want a *serve.InvalidError", s, err)
			}
			if inv.Field != tc.wantField || !strings.Contains(inv.Reason, tc.wantMsg) {
				t.Errorf("InvalidError{%q, %q}, want field %q and a reason with %q", inv.Field, inv.Reason, tc.wantField, tc.wantMsg)
			}
		})
	}
}

func TestSelectKeepsOnlyTheModelsFeatures(t *testing.T) {
	m := testModel()
	all := map[string]float64{"2160-0.last": 1.2, "2160-0.mean": 1.1, "718-7.last": 13, "2345-7.mean": 95}
	got := m.Select(all)
	want := map[string]float64{"2160-0.last": 1.2, "2345-7.mean": 95}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Select = %v, want %v", got, want)
	}
	if _, err := m.Score(all); err == nil {
		t.Error("Score(all) accepted features the model does not have")
	}
	if _, err := m.Score(got); err != nil {
		t.Errorf("Score(Select(all)): %v", err)
	}
}

func TestScoreJSONShape(t *testing.T) {
	m := testModel()
	s, err := m.Score(map[string]float64{"2160-0.last": 1.5, "2345-7.mean": 120, "2160-0.trend": 0.2})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"model":"test_model"`, `"version":"v1"`, `"score":0.924`, `"band":"high"`, `"logit":2.5`,
		`"contributions":[{"feature":"2160-0.last","value":1.5,"imputed":false,"coefficient":2,"contribution":2}`,
		`"imputed":[]`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
}

func TestFeatures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return t0.AddDate(0, 0, d) }
	res := func(v float64, d int) summary.Result { return summary.Result{Value: v, CollectedAt: day(d)} }
	for _, tc := range []struct {
		name  string
		tests map[string]*summary.TestSummary
		want  map[string]float64
	}{
		{
			// Days 0, 15, 45 are x = 0, 0.5, 1.5 periods of 30 days; values 1.0, 1.3, 1.5.
			// mean x = 2/3, mean y = 3.8/3. Σdx·dy = 11/30, Σdx² = 35/30: slope = 11/35 = 0.3142857 per 30 days.
			name: "uneven times, newest first",
			tests: map[string]*summary.TestSummary{"2160-0": {Unit: "mg/dL", Count: 5, Mean: 1.2, Last: res(1.5, 45),
				Recent: []summary.Result{res(1.5, 45), res(1.3, 15), res(1.0, 0)}}},
			want: map[string]float64{"2160-0.mean": 1.2, "2160-0.last": 1.5, "2160-0.trend": 11.0 / 35},
		},
		{
			// 94, 110, 126 mg/dL at days 0, 30, 60 (Recent lists them newest first): +16 per 30 days.
			name: "steady rise, exact slope",
			tests: map[string]*summary.TestSummary{"2345-7": {Unit: "mg/dL", Count: 3, Mean: 110, Last: res(126, 60),
				Recent: []summary.Result{res(126, 60), res(110, 30), res(94, 0)}}},
			want: map[string]float64{"2345-7.mean": 110, "2345-7.last": 126, "2345-7.trend": 16},
		},
		{
			// Two results at day 10 and one at day 40: distinct times 2, so a slope:
			// x = 0, 0, 1; y = 2, 4, 6; mean x 1/3, mean y 4; Σdx·dy = (−1/3)(−2)+(−1/3)(0)+(2/3)(2) = 2;
			// Σdx² = 1/9+1/9+4/9 = 2/3: slope 3.
			name: "a repeated time still has a slope",
			tests: map[string]*summary.TestSummary{"4548-4": {Unit: "%", Count: 3, Mean: 4, Last: res(6, 40),
				Recent: []summary.Result{res(6, 40), res(4, 10), res(2, 10)}}},
			want: map[string]float64{"4548-4.mean": 4, "4548-4.last": 6, "4548-4.trend": 3},
		},
		{
			name: "every recent result at the same time: no trend",
			tests: map[string]*summary.TestSummary{"2160-0": {Unit: "mg/dL", Count: 2, Mean: 1.1, Last: res(1.2, 5),
				Recent: []summary.Result{res(1.2, 5), res(1.0, 5)}}},
			want: map[string]float64{"2160-0.mean": 1.1, "2160-0.last": 1.2},
		},
		{
			// 1.00 and 1.05 mg/dL an hour apart would be +36 mg/dL per 30 days.
			name: "results hours apart: no trend",
			tests: map[string]*summary.TestSummary{"2160-0": {Unit: "mg/dL", Count: 2, Mean: 1.025, Last: summary.Result{Value: 1.05, CollectedAt: t0.Add(time.Hour)},
				Recent: []summary.Result{{Value: 1.05, CollectedAt: t0.Add(time.Hour)}, {Value: 1.0, CollectedAt: t0}}}},
			want: map[string]float64{"2160-0.mean": 1.025, "2160-0.last": 1.05},
		},
		{
			// 1.0 at day 0, 1.7 at day 7 (exactly MinTrendSpan): 0.7 per 7 days = 3 per 30 days.
			name: "results a week apart: a trend",
			tests: map[string]*summary.TestSummary{"2160-0": {Unit: "mg/dL", Count: 2, Mean: 1.35, Last: res(1.7, 7),
				Recent: []summary.Result{res(1.7, 7), res(1.0, 0)}}},
			want: map[string]float64{"2160-0.mean": 1.35, "2160-0.last": 1.7, "2160-0.trend": 3},
		},
		{
			name: "one result: no trend",
			tests: map[string]*summary.TestSummary{"2160-0": {Unit: "mg/dL", Count: 1, Mean: 0.9, Last: res(0.9, 5),
				Recent: []summary.Result{res(0.9, 5)}}},
			want: map[string]float64{"2160-0.mean": 0.9, "2160-0.last": 0.9},
		},
		{
			name: "empty and nil summaries are skipped",
			tests: map[string]*summary.TestSummary{
				"2160-0": {Unit: "mg/dL"},
				"2345-7": nil,
				"718-7":  {Unit: "g/dL", Count: 1, Mean: 13.5, Last: res(13.5, 1), Recent: []summary.Result{res(13.5, 1)}},
			},
			want: map[string]float64{"718-7.mean": 13.5, "718-7.last": 13.5},
		},
		{name: "no tests", tests: nil, want: map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Features(summary.Patient{PatientID: "P1", Tests: tc.tests})
			if len(got) != len(tc.want) {
				t.Fatalf("Features = %v, want %v", got, tc.want)
			}
			for k, w := range tc.want {
				g, ok := got[k]
				if !ok || math.Abs(g-w) > 1e-9 {
					t.Errorf("Features[%q] = %v (present %v), want %v", k, g, ok, w)
				}
			}
		})
	}
}
