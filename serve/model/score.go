package model

import (
	"errors"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/labplatform/platform/contracts/summary"
	"github.com/labplatform/platform/serve"
)

// trendPeriod is the time unit of a trend: a slope per 30 days.
const trendPeriod = 30 * 24 * time.Hour

// MinTrendSpan is the shortest time the recent results must span for a
// trend: a slope fitted over hours and stated per 30 days multiplies
// within-day noise (two creatinine results an hour apart that differ by 0.05
// mg/dL make 36 mg/dL a month). Below it the trend is missing, and the model
// imputes it.
const MinTrendSpan = 7 * 24 * time.Hour

// Features returns every feature the patient's summary supports, keyed
// "<LOINC>.<stat>": for each test with at least one result its mean
// ("<code>.mean") and newest value ("<code>.last"), and, when the recent
// results span at least MinTrendSpan, the least-squares slope of their
// values against collection time ("<code>.trend", canonical units per 30
// days). Values are in each test's canonical unit, as the
// summary keeps them.
func Features(p summary.Patient) map[string]float64 {
	out := map[string]float64{}
	for code, ts := range p.Tests {
		if ts == nil || ts.Count <= 0 {
			continue
		}
		out[code+"."+StatMean] = ts.Mean
		out[code+"."+StatLast] = ts.Last.Value
		if slope, ok := trend(ts.Recent); ok {
			out[code+"."+StatTrend] = slope
		}
	}
	return out
}

// trend is the ordinary least-squares slope of value on time, in value
// units per trendPeriod, over rs; false when rs spans less than MinTrendSpan
// (fewer than two distinct collection times included: no slope is defined).
func trend(rs []summary.Result) (float64, bool) {
	if len(rs) < 2 {
		return 0, false
	}
	first, last := rs[0].CollectedAt, rs[0].CollectedAt
	for _, r := range rs[1:] {
		if r.CollectedAt.Before(first) {
			first = r.CollectedAt
		}
		if r.CollectedAt.After(last) {
			last = r.CollectedAt
		}
	}
	if last.Sub(first) < MinTrendSpan {
		return 0, false
	}
	// Time in periods since the first result, so the sums stay small.
	t0 := rs[0].CollectedAt
	xs := make([]float64, len(rs))
	var mx, my float64
	for i, r := range rs {
		xs[i] = float64(r.CollectedAt.Sub(t0)) / float64(trendPeriod)
		mx += xs[i]
		my += r.Value
	}
	n := float64(len(rs))
	mx, my = mx/n, my/n
	var sxy, sxx float64
	for i, r := range rs {
		dx := xs[i] - mx
		sxy += dx * (r.Value - my)
		sxx += dx * dx
	}
	if sxx == 0 { // every result at the same time
		return 0, false
	}
	return sxy / sxx, true
}

// Select returns the entries of all that are features of m, so a caller
// can pass everything Features found to Score without the features the
// model does not use being refused.
func (m *Model) Select(all map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m.Features))
	for _, f := range m.Features {
		if v, ok := all[f.Name]; ok {
			out[f.Name] = v
		}
	}
	return out
}

// Score is a model's answer for one set of features.
type Score struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	// Score is the estimated probability, sigmoid(Logit), in [0, 1].
	Score float64 `json:"score"`
	Band  string  `json:"band"`
	// Logit is Intercept + Σ Contribution.
	Logit float64 `json:"logit"`
	// Contributions has one entry per feature, in the model's order.
	Contributions []Contribution `json:"contributions"`
	// Imputed names the features that were missing and imputed, in the
	// model's order; empty, never null, when none was.
	Imputed []string `json:"imputed"`
}

// Contribution is one feature's part of the logit:
// Coefficient × (Value − center) / scale.
type Contribution struct {
	Feature      string  `json:"feature"`
	Value        float64 `json:"value"`
	Imputed      bool    `json:"imputed"`
	Coefficient  float64 `json:"coefficient"`
	Contribution float64 `json:"contribution"`
}

// Score applies the model to features (name -> value, as Features names
// them). A feature the model does not have, or a value that is not a finite
// number, is refused with a *serve.InvalidError whose Field is
// "features.<name>" (several problems are joined, in name order). A missing
// feature is imputed as the model says and listed in Score.Imputed.
func (m *Model) Score(features map[string]float64) (Score, error) {
	known := make(map[string]bool, len(m.Features))
	for _, f := range m.Features {
		known[f.Name] = true
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(features)) {
		v := features[name]
		switch {
		case !known[name]:
			errs = append(errs, serve.Invalid("features."+name, "not a feature of model %s %s", m.Name, m.Version))
		case !finite(v):
			errs = append(errs, serve.Invalid("features."+name, "not a finite number"))
		}
	}
	switch len(errs) {
	case 0:
	case 1:
		return Score{}, errs[0] // a *serve.InvalidError itself
	default:
		return Score{}, errors.Join(errs...)
	}

	s := Score{
		Model:         m.Name,
		Version:       m.Version,
		Logit:         m.Intercept,
		Contributions: make([]Contribution, 0, len(m.Features)),
		Imputed:       []string{},
	}
	for _, f := range m.Features {
		v, ok := features[f.Name]
		if !ok {
			v = f.imputed()
			s.Imputed = append(s.Imputed, f.Name)
		}
		c := f.Coefficient * (v - f.Center) / f.Scale
		s.Contributions = append(s.Contributions, Contribution{
			Feature: f.Name, Value: v, Imputed: !ok, Coefficient: f.Coefficient, Contribution: c,
		})
		s.Logit += c
	}
	if !finite(s.Logit) {
		return Score{}, serve.Invalid("features", "values too large for model %s %s: the logit overflows", m.Name, m.Version)
	}
	s.Score = sigmoid(s.Logit)
	s.Band = m.band(s.Score)
	return s, nil
}

// sigmoid is 1/(1+e^−z), computed without overflow for large |z|.
func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}
