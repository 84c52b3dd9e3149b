package cost

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/labplatform/platform/lifecycle/policy"
)

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write cost report json: %w", err)
	}
	return nil
}

// WriteText writes the report as text tables: the inventory, the current
// monthly estimate, the projection with and without the policies, the
// projection by class, and the assumptions.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	cur := r.Prices.Currency
	fmt.Fprintf(ew, "Storage cost report for %q at %s\n", r.Prefix, r.Generated.UTC().Format(time.RFC3339))
	fmt.Fprintf(ew, "Prices: %s, %s, as of %s (%s)\n\n", r.Prices.Region, cur, r.Prices.AsOf, r.Prices.Source)

	fmt.Fprintln(ew, "Inventory (every version; age in days since creation)")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bucket\tclass\tage\tobjects\tbytes\tGiB\tnoncurrent objects\tnoncurrent bytes\t")
	for _, c := range r.Inventory {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%.3f\t%d\t%d\t\n", c.Bucket, c.Class, c.Band, c.Objects, c.Bytes, gibs(c.Bytes), c.NoncurrentObjects, c.NoncurrentBytes)
	}
	if len(r.Inventory) == 0 {
		fmt.Fprintln(tw, "(empty)\t\t\t\t\t\t\t\t")
	}
	tw.Flush()

	fmt.Fprintf(ew, "\nCurrent monthly estimate (at rest only): %s %.2f\n", cur, r.Current.Total)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tGiB\tper month\t")
	for _, c := range sortedClasses(r.Current.ByClass) {
		fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t\n", c, gibs(r.Current.Bytes[c]), r.Current.ByClass[c])
	}
	tw.Flush()

	fmt.Fprintf(ew, "\nProjection over %d months of 30 days, %s\n", r.Months, cur)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "month\tstart\twith policies\tat rest\toperations\tretrieval\tearly deletion\ttransitions\tdeletions\twithout policies\tsaving\t")
	for i, m := range r.WithPolicies.Months {
		without := r.WithoutPolicies.Months[i].Cost.Total
		fmt.Fprintf(tw, "%d\t%s\t%.2f\t%.2f\t%.4f\t%.2f\t%.2f\t%d\t%d\t%.2f\t%.2f\t\n",
			m.Month, m.Start.UTC().Format(time.DateOnly), m.Cost.Total, m.Cost.AtRest, m.Cost.Operations, m.Cost.Retrieval, m.Cost.EarlyDeletion,
			m.Transitions, m.Deletions, without, without-m.Cost.Total)
	}
	wt, wo := r.WithPolicies.Total, r.WithoutPolicies.Total
	fmt.Fprintf(tw, "total\t\t%.2f\t%.2f\t%.4f\t%.2f\t%.2f\t\t\t%.2f\t%.2f\t\n",
		wt.Total, wt.AtRest, wt.Operations, wt.Retrieval, wt.EarlyDeletion, wo.Total, wo.Total-wt.Total)
	tw.Flush()

	classes := projectionClasses(r)
	fmt.Fprintf(ew, "\nProjected cost by class, with policies | without policies, %s\n", cur)
	tw = tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := []string{"month"}
	for _, c := range classes {
		header = append(header, string(c))
	}
	header = append(header, "|")
	for _, c := range classes {
		header = append(header, string(c))
	}
	fmt.Fprintln(tw, strings.Join(header, "\t")+"\t")
	for i, m := range r.WithPolicies.Months {
		row := []string{fmt.Sprint(m.Month)}
		for _, c := range classes {
			row = append(row, fmt.Sprintf("%.2f", m.ByClass[c].Total))
		}
		row = append(row, "|")
		for _, c := range classes {
			row = append(row, fmt.Sprintf("%.2f", r.WithoutPolicies.Months[i].ByClass[c].Total))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()

	fmt.Fprintln(ew, "\nAssumptions")
	for _, a := range r.Assumptions {
		fmt.Fprintf(ew, "- %s\n", a)
	}
	if len(r.GrowthPerMonth) > 0 {
		for _, role := range orderRoles(slices.Collect(maps.Keys(r.GrowthPerMonth))) {
			fmt.Fprintf(ew, "- growth: %s +%d bytes (%.3f GiB) per month\n", role, r.GrowthPerMonth[role], gibs(r.GrowthPerMonth[role]))
		}
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(ew, "Warning: %s\n", wn)
	}
	if ew.err != nil {
		return fmt.Errorf("write cost report: %w", ew.err)
	}
	return nil
}

// projectionClasses returns the four classes, and any other class the
// report priced, warm to cold.
func projectionClasses(r *Report) []policy.Class {
	set := map[policy.Class]bool{}
	for _, c := range classes {
		set[c] = true
	}
	for _, p := range []Projection{r.WithPolicies, r.WithoutPolicies} {
		for _, m := range p.Months {
			for c := range m.ByClass {
				set[c] = true
			}
		}
	}
	return slices.SortedFunc(maps.Keys(set), compareClass)
}

func sortedClasses[V any](m map[policy.Class]V) []policy.Class {
	return slices.SortedFunc(maps.Keys(m), compareClass)
}

// errWriter keeps the first write error so the report is written without
// checking every line.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
