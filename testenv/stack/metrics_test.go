package stack

import "testing"

func TestMetricsSum(t *testing.T) {
	m := metrics{
		`ingest_objects_shipped_total{kind="file",robot="R001"}`:  3,
		`ingest_objects_shipped_total{kind="chunk",robot="R001"}`: 5,
		`ingest_objects_shipped_total{kind="file",robot="R002"}`:  4,
		`ingest_passes_total`:       7,
		`ingest_passes_total_other`: 100,
	}
	for _, tc := range []struct {
		name, label string
		want        float64
	}{
		{"ingest_objects_shipped_total", `kind="file"`, 7},
		{"ingest_objects_shipped_total", "", 12},
		{"ingest_passes_total", "", 7},
		{"ingest_backlog_files", "", 0},
	} {
		if got := m.sum(tc.name, tc.label); got != tc.want {
			t.Errorf("sum(%s, %s) = %v, want %v", tc.name, tc.label, got, tc.want)
		}
	}
}
