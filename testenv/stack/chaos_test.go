package stack

import (
	"bytes"
	"testing"
	"time"
)

// TestChaos kills ingest, both process workers and the scheduler with
// SIGKILL, each at least twice, at random points while the robots write;
// after the supervisors restarted them and everything settled, every
// invariant must hold and no message may be dead-lettered. `make
// reliability` runs the same with 50 kills.
func TestChaos(t *testing.T) {
	t.Parallel() // TestOutage, which stops the shared emulators, is not parallel: it runs first
	bin, p, iss := setUp(t)
	var out bytes.Buffer
	res, err := Chaos(t.Context(), p, iss, ChaosOptions{
		Stack: Options{
			Bin: bin, Dir: logsOnFailure(t), Robots: 4, RobotsFor: 25 * time.Second, FilesPerHour: 900, Rows: 120,
			Patients: 40, APIAddr: freeTestAddr(t), Grace: 10 * time.Second,
		},
		Rounds:  8,
		Seed:    uint64(time.Now().UnixNano()),
		Timeout: 6 * time.Minute,
	}, &out)
	t.Logf("chaos output:\n%s", out.String())
	if err != nil {
		t.Fatalf("chaos: %v", err)
	}
	for _, v := range []string{Ingest, Orchestrate, Process + "-1", Process + "-2"} {
		if res.Kills[v] < 2 {
			t.Errorf("%s killed %d times, want at least 2 (kills %v)", v, res.Kills[v], res.Kills)
		}
		if res.Starts[v] < res.Kills[v]+1 {
			t.Errorf("%s started %d times after %d kills: a restart is missing", v, res.Starts[v], res.Kills[v])
		}
	}
	if res.Report == nil || !res.Report.OK() || res.Report.Done == 0 {
		t.Errorf("report %+v", res.Report)
	}
}
