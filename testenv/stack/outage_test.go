package stack

import (
	"bytes"
	"testing"
	"time"
)

// TestOutage stops the Cloud Storage, Pub/Sub and Firestore emulators one
// after the other for a few seconds while the robots write: the services
// that depend on each must say so on /readyz, be ready again after the
// restart, and once everything settled every invariant must hold with no
// dead letter. It stops the emulators every test of this binary shares, so
// it never runs in parallel.
func TestOutage(t *testing.T) {
	bin, p, iss := setUp(t)
	var out bytes.Buffer
	res, err := Outage(t.Context(), p, iss, env, OutageOptions{
		Stack: Options{
			Bin: bin, Dir: logsOnFailure(t), Robots: 4, FilesPerHour: 900, Rows: 120,
			Patients: 40, APIAddr: freeTestAddr(t), Grace: 10 * time.Second,
		},
		Down: 6 * time.Second,
	}, &out)
	t.Logf("outage output:\n%s", out.String())
	if err != nil {
		t.Fatalf("outage: %v", err)
	}
	if len(res.Steps) != 3 || res.Report == nil || !res.Report.OK() || res.Report.Done == 0 || res.DeadLetters != 0 {
		t.Errorf("result %+v", res)
	}
}
