package cost

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"

	"github.com/labplatform/platform/lifecycle/policy"
)

// SVG layout, in pixels.
const (
	svgWidth   = 1000
	svgHeight  = 480
	svgLeft    = 80 // room for the y axis
	svgGap     = 60 // between the panels
	svgRight   = 20
	svgTop     = 100 // title, legend and panel titles
	svgBottom  = 60  // month labels and the x axis label
	svgYTicks  = 5
	svgBarFill = 0.7 // share of a month's slot a bar covers
)

// classColors are colour-blind-safe fills, warm to cold.
var classColors = map[policy.Class]string{
	policy.Standard: "#4e79a7",
	policy.Nearline: "#f28e2b",
	policy.Coldline: "#59a14f",
	policy.Archive:  "#b07aa1",
}

const otherColor = "#9d9d9d"

// WriteSVG draws the projection as two panels of stacked bars, with and
// without the policies, on one cost axis: each month's cost split by class
// (at rest plus the charges attributed to the class). Each class is one
// series, a <g class="series" data-class=... data-projection=...>.
func (r *Report) WriteSVG(w io.Writer) error {
	classes := projectionClasses(r)
	panels := []struct {
		key, title string
		p          Projection
	}{
		{"with_policies", "with policies", r.WithPolicies},
		{"without_policies", "without policies", r.WithoutPolicies},
	}
	top := 0.0
	for _, pn := range panels {
		for _, m := range pn.p.Months {
			sum := 0.0
			for _, c := range classes {
				sum += m.ByClass[c].Total
			}
			top = math.Max(top, sum)
		}
	}
	axisMax := niceCeil(top)

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, svgHeight, svgWidth, svgHeight)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#ffffff"/>`+"\n", svgWidth, svgHeight)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", svgLeft,
		esc(fmt.Sprintf("Projected storage cost by class, %s (%s prices as of %s)", r.Prefix, r.Prices.Region, r.Prices.AsOf)))

	// Legend.
	x := float64(svgLeft)
	for _, c := range classes {
		fmt.Fprintf(&b, `<rect x="%.1f" y="40" width="14" height="14" fill="%s"/>`, x, color(c))
		fmt.Fprintf(&b, `<text x="%.1f" y="52">%s</text>`+"\n", x+20, esc(string(c)))
		x += 120
	}

	plotH := float64(svgHeight - svgTop - svgBottom)
	panelW := float64(svgWidth-svgLeft-svgGap-svgRight) / 2
	yOf := func(v float64) float64 { return float64(svgTop) + plotH - v/axisMax*plotH }
	for pi, pn := range panels {
		px := float64(svgLeft) + float64(pi)*(panelW+svgGap)
		total := pn.p.Total.Total
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="14" text-anchor="middle">%s</text>`+"\n", px+panelW/2, svgTop-16,
			esc(fmt.Sprintf("%s: %s %.2f over %d months", pn.title, r.Prices.Currency, total, len(pn.p.Months))))

		// Y axis, its ticks and grid lines.
		fmt.Fprintf(&b, `<g class="axis y" data-projection="%s">`+"\n", pn.key)
		for i := 0; i <= svgYTicks; i++ {
			v := axisMax * float64(i) / svgYTicks
			y := yOf(v)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#e0e0e0"/>`, px, y, px+panelW, y)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", px-6, y+4, esc(formatAmount(v)))
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", px, svgTop, px, yOf(0))
		yl := float64(svgTop) + plotH/2
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
			px-56, yl, px-56, yl, esc(r.Prices.Currency+" per month"))
		b.WriteString("</g>\n")

		// X axis: months.
		n := len(pn.p.Months)
		slot := panelW / float64(max(n, 1))
		fmt.Fprintf(&b, `<g class="axis x" data-projection="%s">`+"\n", pn.key)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#333"/>`+"\n", px, yOf(0), px+panelW, yOf(0))
		for i, m := range pn.p.Months {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", px+slot*(float64(i)+0.5), yOf(0)+16, m.Month)
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">month</text>`+"\n", px+panelW/2, yOf(0)+36)
		b.WriteString("</g>\n")

		// One series per class, stacked warm (bottom) to cold.
		base := make([]float64, n)
		for _, c := range classes {
			fmt.Fprintf(&b, `<g class="series" data-class="%s" data-projection="%s" fill="%s">`+"\n", esc(string(c)), pn.key, color(c))
			for i, m := range pn.p.Months {
				v := m.ByClass[c].Total
				y0, y1 := yOf(base[i]), yOf(base[i]+v)
				base[i] += v
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.2f" width="%.1f" height="%.2f"><title>%s</title></rect>`+"\n",
					px+slot*(float64(i)+(1-svgBarFill)/2), y1, slot*svgBarFill, y0-y1,
					esc(fmt.Sprintf("month %d, %s, %s: %s %.2f", m.Month, pn.title, c, r.Prices.Currency, v)))
			}
			b.WriteString("</g>\n")
		}
	}
	b.WriteString("</svg>\n")
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write cost chart: %w", err)
	}
	return nil
}

func color(c policy.Class) string {
	if col, ok := classColors[c]; ok {
		return col
	}
	return otherColor
}

// esc escapes text for XML character data and attribute values.
func esc(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s)) // a bytes.Buffer does not fail
	return b.String()
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten (1 for 0).
func niceCeil(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p*(1+1e-12) {
			return m * p
		}
	}
	return 10 * p
}

func formatAmount(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.4f", v)
}
