package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/labplatform/platform/orchestrate/scheduler"
	"github.com/labplatform/platform/orchestrate/state"
)

// progress is a backfill's progress, from its runs and its skipped count.
type progress struct {
	Total     int `json:"total"`
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
	Running   int `json:"running"`
	Queued    int `json:"queued"`
	Skipped   int `json:"skipped"`
	// Done counts the intervals finished: succeeded, failed or skipped.
	Done    int     `json:"done"`
	Percent float64 `json:"percent"`
}

// backfillStatus is a backfill with its progress (the JSON output).
type backfillStatus struct {
	Backfill state.Backfill `json:"backfill"`
	Progress progress       `json:"progress"`
}

// backfillProgress reads the runs of backfill b.
func backfillProgress(ctx context.Context, st state.Store, b state.Backfill) (backfillStatus, error) {
	runs, err := st.Runs(ctx, state.RunFilter{DAGID: b.DAGID, BackfillID: b.ID})
	if err != nil {
		return backfillStatus{}, fmt.Errorf("runs of backfill %s: %w", b.ID, err)
	}
	p := progress{Total: b.Total, Skipped: b.Skipped}
	for _, r := range runs {
		switch r.State {
		case state.RunSuccess:
			p.Succeeded++
		case state.RunFailed:
			p.Failed++
		case state.RunRunning:
			p.Running++
		case state.RunQueued:
			p.Queued++
		}
	}
	p.Done = min(p.Succeeded+p.Failed+p.Skipped, p.Total)
	if p.Total > 0 {
		p.Percent = 100 * float64(p.Done) / float64(p.Total)
	}
	return backfillStatus{Backfill: b, Progress: p}, nil
}

// barWidth is the number of cells of the progress bar.
const barWidth = 20

// bar renders one progress line:
//
//	bq_load-2026... [########............] 41% 3,590/8,760 · 12 running · 3 failed · skipped 0 · running
func (s backfillStatus) bar() string {
	p := s.Progress
	filled := 0
	if p.Total > 0 {
		filled = min(barWidth, barWidth*p.Done/p.Total)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s%s] %d%% %s/%s · %s running", s.Backfill.ID,
		strings.Repeat("#", filled), strings.Repeat(".", barWidth-filled),
		int(p.Percent+0.5), thousands(p.Done), thousands(p.Total), thousands(p.Running))
	if p.Queued > 0 {
		fmt.Fprintf(&b, " · %s queued", thousands(p.Queued))
	}
	fmt.Fprintf(&b, " · %s failed · skipped %s · %s", thousands(p.Failed), thousands(p.Skipped), s.Backfill.State)
	return b.String()
}

// detail is the line under a backfill's bar in "backfill list".
func (s backfillStatus) detail() string {
	b := s.Backfill
	d := fmt.Sprintf("  %s, logical dates %s .. %s, reprocess %s, %d runs at a time, created %s",
		b.DAGID, fmtTime(b.From), fmtTime(b.To), b.Reprocess, b.MaxActiveRuns, fmtTime(b.CreatedAt))
	if !b.EndedAt.IsZero() {
		d += ", ended " + fmtTime(b.EndedAt)
	}
	if len(b.Params) > 0 {
		d += ", params " + fmtParams(b.Params)
	}
	return d
}

func (a *app) backfillCreate(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("backfill create", &c)
	from := fs.String("from", "", "first logical date: RFC 3339 or YYYY-MM-DD (required)")
	to := fs.String("to", "", "last logical date, inclusive: RFC 3339, or YYYY-MM-DD for that whole day (required)")
	reprocess := fs.String("reprocess", string(state.ReprocessMissing), "intervals that already have a run: missing (leave them), failed (run the failed ones again) or all")
	maxActive := fs.Int("max-active-runs", 4, "runs of the backfill at a time")
	params := paramsFlag{}
	fs.Var(params, "param", "run parameter name=value (repeatable)")
	wait := fs.Bool("wait", false, "redraw the progress until the backfill is done or cancelled (needs --state firestore and a running scheduler)")
	pos, err := a.parse(fs, &c, args, "<dag> --from D --to D [--reprocess missing|failed|all] [--max-active-runs N] [--param k=v ...] [--wait]", 1, 1)
	if err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usageErrorf("backfill create needs --from and --to")
	}
	if *wait && c.state == storeBolt {
		return usageErrorf("--wait needs a state store shared with a running scheduler (--state firestore): " +
			"a scheduler locks the bolt file, so it cannot run the backfill while this command waits; " +
			"start `orchestrate scheduler` and follow its logs instead")
	}
	switch state.Reprocess(*reprocess) {
	case state.ReprocessMissing, state.ReprocessFailed, state.ReprocessAll:
	default:
		return usageErrorf("--reprocess %q: want missing, failed or all", *reprocess)
	}
	if *maxActive <= 0 {
		return usageErrorf("--max-active-runs %d: want at least 1", *maxActive)
	}
	s, d, err := a.openDAG(ctx, &c, needs{store: true}, pos[0])
	if err != nil {
		return err
	}
	defer s.Close()
	req := scheduler.BackfillRequest{Reprocess: state.Reprocess(*reprocess), MaxActiveRuns: *maxActive, Params: params}
	if req.From, _, err = parseDate("from", *from, d.Location); err != nil {
		return err
	}
	var dateOnly bool
	if req.To, dateOnly, err = parseDate("to", *to, d.Location); err != nil {
		return err
	}
	if dateOnly {
		req.To = req.To.AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	rec := &createRecorder{Store: s.store}
	b, err := scheduler.NewBackfill(ctx, rec, d, req, a.now())
	switch {
	case err != nil && rec.err == nil:
		// Rejected before the store was asked: no schedule, an empty
		// range, an unknown parameter.
		return withCode(exitUsage, err)
	case err != nil:
		return storeCode(err)
	}
	st, err := backfillProgress(ctx, s.store, b)
	if err != nil {
		return err
	}
	if *wait {
		return a.waitBackfill(ctx, s.store, st, c.json)
	}
	if c.json {
		return writeJSON(a.stdout, st)
	}
	fmt.Fprintf(a.stdout, "created backfill %s: %s intervals of %s; a running scheduler runs it\n%s\n%s\n",
		b.ID, thousands(b.Total), d.ID, st.bar(), st.detail())
	return nil
}

// createRecorder remembers the error of CreateBackfill, to tell a rejected
// request from a store failure.
type createRecorder struct {
	state.Store
	err error
}

func (r *createRecorder) CreateBackfill(ctx context.Context, b state.Backfill) error {
	r.err = r.Store.CreateBackfill(ctx, b)
	return r.err
}

// waitBackfill redraws the backfill's progress every a.refresh until it is
// done or cancelled: on a terminal one line rewritten with \r, otherwise a
// line each time. A cancelled backfill, or one with failed runs, is an
// error.
func (a *app) waitBackfill(ctx context.Context, st state.Store, cur backfillStatus, asJSON bool) error {
	out := a.stdout
	if asJSON {
		out = a.stderr
	}
	draw := func(s backfillStatus) {
		if a.tty {
			fmt.Fprintf(out, "\r\033[K%s", s.bar())
		} else {
			fmt.Fprintln(out, s.bar())
		}
	}
	draw(cur)
	tick := time.NewTicker(a.refresh)
	defer tick.Stop()
	for cur.Backfill.State == state.BackfillRunning {
		select {
		case <-ctx.Done():
			if a.tty {
				fmt.Fprintln(out)
			}
			return fmt.Errorf("stopped waiting for backfill %s; it goes on: orchestrate backfill list", cur.Backfill.ID)
		case <-tick.C:
		}
		b, err := st.Backfill(ctx, cur.Backfill.ID)
		if err != nil {
			return storeCode(fmt.Errorf("read backfill %s: %w", cur.Backfill.ID, err))
		}
		if cur, err = backfillProgress(ctx, st, b); err != nil {
			return err
		}
		draw(cur)
	}
	if a.tty {
		fmt.Fprintln(out)
	}
	if asJSON {
		if err := writeJSON(a.stdout, cur); err != nil {
			return err
		}
	}
	switch {
	case cur.Backfill.State == state.BackfillCancelled:
		return fmt.Errorf("backfill %s was cancelled", cur.Backfill.ID)
	case cur.Progress.Failed > 0:
		return fmt.Errorf("backfill %s is done with %s failed runs: orchestrate runs list --dag %s --state failed",
			cur.Backfill.ID, thousands(cur.Progress.Failed), cur.Backfill.DAGID)
	}
	return nil
}

func (a *app) backfillList(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("backfill list", &c)
	if _, err := a.parse(fs, &c, args, "", 0, 0); err != nil {
		return err
	}
	s, err := a.open(ctx, &c, needs{store: true})
	if err != nil {
		return err
	}
	defer s.Close()
	bfs, err := s.store.Backfills(ctx)
	if err != nil {
		return fmt.Errorf("list backfills: %w", err)
	}
	out := make([]backfillStatus, 0, len(bfs))
	for _, b := range bfs {
		st, err := backfillProgress(ctx, s.store, b)
		if err != nil {
			return err
		}
		out = append(out, st)
	}
	if c.json {
		return writeJSON(a.stdout, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(a.stdout, "no backfills")
		return nil
	}
	return printBackfills(a.stdout, out)
}

func printBackfills(w io.Writer, sts []backfillStatus) error {
	for _, st := range sts {
		if _, err := fmt.Fprintf(w, "%s\n%s\n", st.bar(), st.detail()); err != nil {
			return err
		}
	}
	return nil
}

func (a *app) backfillCancel(ctx context.Context, args []string) error {
	var c common
	fs := a.flagSet("backfill cancel", &c)
	pos, err := a.parse(fs, &c, args, "<id>", 1, 1)
	if err != nil {
		return err
	}
	s, err := a.open(ctx, &c, needs{store: true})
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := scheduler.CancelBackfill(ctx, s.store, pos[0], a.now())
	if err != nil {
		return storeCode(err)
	}
	st, err := backfillProgress(ctx, s.store, b)
	if err != nil {
		return err
	}
	if c.json {
		return writeJSON(a.stdout, st)
	}
	fmt.Fprintf(a.stdout, "cancelled backfill %s: no new runs; its queued runs end as failed at the next scheduler pass, running ones finish\n%s\n", b.ID, st.bar())
	return nil
}
