package cost

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/labplatform/platform/lifecycle/policy"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

// t0 is the test clock's "now".
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const GiB = int64(1) << 30

// testPrices are the europe-west1 list prices of prices.json, written out so
// the hand-computed figures below do not move if the shipped file changes.
func testPrices() Prices {
	return Prices{
		Source:   "https://cloud.google.com/storage/pricing",
		AsOf:     "2025-01-01",
		Region:   "europe-west1",
		Currency: "USD",
		Classes: map[policy.Class]ClassPrice{
			policy.Standard: {StoragePerGiBMonth: 0.020, MinStorageDays: 0, ClassAPer10k: 0.05, ClassBPer10k: 0.004},
			policy.Nearline: {StoragePerGiBMonth: 0.010, RetrievalPerGiB: 0.01, MinStorageDays: 30, ClassAPer10k: 0.10, ClassBPer10k: 0.01},
			policy.Coldline: {StoragePerGiBMonth: 0.004, RetrievalPerGiB: 0.02, MinStorageDays: 90, ClassAPer10k: 0.20, ClassBPer10k: 0.10},
			policy.Archive:  {StoragePerGiBMonth: 0.0012, RetrievalPerGiB: 0.05, MinStorageDays: 365, ClassAPer10k: 0.50, ClassBPer10k: 0.50},
		},
	}
}

func daysAgo(n int) time.Time { return t0.Add(-time.Duration(n) * day) }

func intp(v int) *int { return &v }

// near compares money with a tolerance far below a cent.
func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %.10f, want %.10f", what, got, want)
	}
}

func mustAdd(t *testing.T, inv *Inventory, role string, o policy.Object) {
	t.Helper()
	if err := inv.Add(role, o); err != nil {
		t.Fatal(err)
	}
}
