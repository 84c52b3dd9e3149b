package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/scheduler"
	"github.com/labplatform/platform/orchestrate/state/firestorestore"
	"github.com/labplatform/platform/testenv"
)

// TestBackfillWaitOnFirestore creates a backfill with --wait on the
// Firestore store (the emulator) while a scheduler shares that store, and
// watches the bar redraw on a terminal until the backfill is done.
func TestBackfillWaitOnFirestore(t *testing.T) {
	ctx := withTimeout(t, 45*time.Second)
	p := env.NewTestPlatform(t)
	clients := testenv.NewTestClients(t, p)
	h := newHarness(t)
	h.tty = true
	h.vars["LAB_PROJECT"] = p.Project
	h.vars["LAB_PREFIX"] = p.Prefix
	h.vars["ORCHESTRATE_STATE"] = "firestore"

	list, err := h.reg(dags.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	sch, err := scheduler.New(firestorestore.New(clients.Firestore, firestorestore.Options{}), list, scheduler.Options{
		Owner: "test", Workers: 4, PollInterval: 20 * time.Millisecond, Now: h.clk.Now, Grace: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	schCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := sch.Run(schCtx); err != nil {
			t.Error(err)
		}
	})
	defer func() { stop(); wg.Wait() }()

	out, errOut, code := h.run(ctx, "backfill", "create", "etl", "--from", "2026-03-01T00:00:00Z", "--to", "2026-03-01T03:00:00Z", "--wait")
	if code != 0 {
		t.Fatalf("backfill create --wait: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "\r\033[K") {
		t.Errorf("no redraw on a terminal: %q", out)
	}
	if !strings.HasSuffix(out, "[####################] 100% 4/4 · 0 running · 0 failed · skipped 0 · done\n") {
		t.Errorf("last line is not the finished bar: %q", out)
	}
	// The store is shared: the CLI sees the runs the scheduler made.
	if runs := h.ok("runs", "list", "--dag", "etl"); strings.Count(runs, "success") != 4 {
		t.Errorf("runs list on firestore:\n%s", runs)
	}
}
