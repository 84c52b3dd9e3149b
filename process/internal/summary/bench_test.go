package summary_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/labplatform/platform/process/internal/summary"
	"github.com/labplatform/platform/testenv"
)

// benchRows makes patients patients with perPatient results each (one
// sample, perPatient tests), sorted by patient, of patient ids prefix+n.
func benchRows(prefix string, patients, perPatient int, sampleSuffix string) []summary.Result {
	rows := make([]summary.Result, 0, patients*perPatient)
	collected := time.Date(2026, 11, 21, 7, 30, 0, 0, time.UTC)
	for p := range patients {
		pid := fmt.Sprintf("%sP%07d", prefix, p)
		for k := range perPatient {
			tc := genTests[k%len(genTests)]
			v := 3 + float64((p*7+k)%60)/10
			rows = append(rows, summary.Result{PatientID: pid, TestCode: tc.code, SampleID: pid + "-S" + sampleSuffix, Unit: tc.unit,
				Flag: flagFor(v), Status: "final", Value: v, CollectedAt: collected, AnalyzedAt: collected.Add(time.Hour)})
		}
	}
	return rows
}

var benchRound int

// BenchmarkUpdater folds 20,000 patients x 3 results per iteration into the
// emulator: "new" patients have no document yet; "existing" patients
// already have one from a previous file (their second sample). Parallel 8
// is the default (for Firestore's latency); on a machine whose cores the
// emulator shares, fewer transactions in flight can be faster.
func BenchmarkUpdater(b *testing.B) {
	const patients, perPatient = 20000, 3
	c := testenv.NewTestClients(b, env.NewTestPlatform(b))
	for _, mode := range []string{"new", "existing"} {
		for _, parallel := range []int{2, 8} {
			b.Run(fmt.Sprintf("%s/parallel=%d", mode, parallel), func(b *testing.B) {
				u := summary.NewUpdater(c.Firestore, summary.Options{Parallel: parallel})
				var elapsed time.Duration
				iter := 0
				for b.Loop() {
					iter++
					benchRound++ // fresh patients and content in every round, also with -count
					prefix := fmt.Sprintf("%s%d-%03d-", mode, parallel, benchRound)
					if mode == "existing" {
						b.StopTimer()
						if _, err := apply(b.Context(), u, hashOf(prefix+"first"), benchRows(prefix, patients, perPatient, "1")); err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
					rows := benchRows(prefix, patients, perPatient, "2")
					start := time.Now()
					st, err := apply(b.Context(), u, hashOf(prefix), rows)
					elapsed += time.Since(start)
					if err != nil {
						b.Fatal(err)
					}
					if st.PatientsUpdated != patients {
						b.Fatalf("stats %+v, want %d patients updated", st, patients)
					}
				}
				b.ReportMetric(float64(iter*patients)/elapsed.Seconds(), "patients/s")
				b.ReportMetric(float64(iter*patients*perPatient)/elapsed.Seconds(), "results/s")
			})
		}
	}
}
