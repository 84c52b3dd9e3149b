package runner_test

import (
	"context"
	"encoding/xml"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/cost"
	"github.com/labplatform/platform/lifecycle/runner"
	"github.com/labplatform/platform/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Run(m, &env, testenv.Options{})) }

type alerts struct {
	mu  sync.Mutex
	got []string
}

func (a *alerts) Alert(_ context.Context, kind, message string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, kind+": "+message)
	return nil
}

func put(t *testing.T, c *testenv.Clients, bucket, name string, size int) {
	t.Helper()
	w := c.Storage.Bucket(bucket).Object(name).NewWriter(t.Context())
	if _, err := w.Write([]byte(strings.Repeat("x", size))); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// The three jobs the lifecycle DAG runs, on the emulators: apply plans
// every bucket (the emulator keeps no lifecycle, so all differ), enforce
// quarantines nothing young, and cost stores its report and the day's
// snapshot, alerting when storage grew too much since the day before.
func TestRunnerJobs(t *testing.T) {
	p := env.NewTestPlatform(t)
	c := testenv.NewTestClients(t, p)
	al := &alerts{}
	r, err := runner.New(c.Storage, c.Firestore, al, runner.Config{Prefix: p.Prefix, AllRules: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	now := time.Now().UTC()

	summary, err := r.Apply(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "4 of 4 buckets differ") {
		t.Errorf("apply dry run: %q", summary)
	}

	put(t, c, names.QuarantineBucket(p.Prefix), "rows/date=2026-03-01/a.csv", 1000)
	summary, err = r.Enforce(ctx, now, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "scanned 1, planned 0 ") {
		t.Errorf("enforce dry run of a young object: %q", summary)
	}
	// 91 days later the quarantine rule deletes it.
	summary, err = r.Enforce(ctx, now.Add(91*24*time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "done 1 (deleted 1000 B") {
		t.Errorf("enforce at 91 days: %q", summary)
	}

	put(t, c, names.CuratedBucket(p.Prefix), "results/date=2026-03-01/robot=R001/a.parquet", 1000)
	yesterday := now.Add(-24 * time.Hour)
	if _, err := r.Cost(ctx, yesterday); err != nil {
		t.Fatal(err)
	}
	put(t, c, names.CuratedBucket(p.Prefix), "results/date=2026-03-02/robot=R001/b.parquet", 5000)
	summary, err = r.Cost(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "monthly at-rest cost now") || !strings.Contains(summary, "storage growth alert") {
		t.Errorf("cost summary %q", summary)
	}
	al.mu.Lock()
	if len(al.got) != 1 || !strings.HasPrefix(al.got[0], cost.KindStorageGrowth) {
		t.Errorf("alerts %v, want one storage growth alert", al.got)
	}
	al.mu.Unlock()
	day := now.Format(time.DateOnly)
	rd, err := c.Storage.Bucket(names.CuratedBucket(p.Prefix)).Object(runner.ReportPrefix + day + ".svg").NewReader(ctx)
	if err != nil {
		t.Fatalf("report SVG: %v", err)
	}
	defer rd.Close()
	dec := xml.NewDecoder(rd)
	for {
		if _, err := dec.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("report SVG is not XML: %v", err)
		}
	}
	if _, err := cost.LoadSnapshot(ctx, c.Firestore, day); err != nil {
		t.Errorf("today's snapshot: %v", err)
	}
}
