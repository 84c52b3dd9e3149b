// Package worker is the process service: it receives the raw bucket's
// object notifications from the process-raw subscription, cleans each object
// with the clean core, writes curated Parquet and quarantine objects, folds
// the results into patient summaries, records lineage, and only then acks.
//
// Every effect is idempotent, so Pub/Sub's at-least-once delivery and
// crashes anywhere change nothing twice: output names are functions of the
// raw object and generation (a retry overwrites), summary batches commit
// with a marker in the same Firestore transaction, and a done lineage
// document makes a redelivery a no-op. A failed attempt nacks; after
// names.MaxDeliveryAttempts the message goes to the dead-letter topic and
// the lineage document says failed, with the error.
package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/storage"
	"github.com/labplatform/platform/contracts/lineage"
	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/process/internal/clean"
	"github.com/labplatform/platform/process/internal/summary"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options tune a Worker; the zero value is ready to use.
type Options struct {
	// ID names this worker in lineage and logs; default the host name and
	// process id.
	ID string
	// MaxOutstandingMessages and MaxOutstandingBytes are the Pub/Sub flow
	// control: how many notifications (and of what total object size) are
	// processed at once. Defaults 1 and 512 MiB: one file already uses
	// every core (parallel rules and Parquet columns) and about 150 MB, the
	// process's budget; scale out with more workers.
	MaxOutstandingMessages int
	MaxOutstandingBytes    int
	// MaxExtension bounds how long the client keeps extending the ack
	// deadline of a message being processed; default 1 hour.
	MaxExtension time.Duration
	// DrainTimeout bounds how long Run waits for files in flight after its
	// context is cancelled; default 2 minutes.
	DrainTimeout time.Duration
	Clean        clean.Options
	Summary      summary.Options
	Logger       *slog.Logger
	Metrics      *Metrics
	Now          func() time.Time
}

func (o Options) withDefaults() Options {
	if o.ID == "" {
		host, _ := os.Hostname() // best effort: the pid alone still identifies the worker on one host
		o.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.MaxOutstandingMessages <= 0 {
		o.MaxOutstandingMessages = 1
	}
	if o.MaxOutstandingBytes <= 0 {
		o.MaxOutstandingBytes = 512 << 20
	}
	if o.MaxExtension <= 0 {
		o.MaxExtension = time.Hour
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Clean.Now = o.Now
	o.Summary.Now = o.Now
	return o
}

// Worker processes raw objects.
type Worker struct {
	st        *storage.Client
	fs        *firestore.Client
	ps        *pubsub.Client
	prefix    string
	summaries *summary.Updater
	opts      Options
	log       *slog.Logger
	m         *Metrics
}

// New returns a worker for the platform with bucket prefix prefix.
func New(st *storage.Client, fs *firestore.Client, ps *pubsub.Client, prefix string, opts Options) *Worker {
	opts = opts.withDefaults()
	return &Worker{
		st: st, fs: fs, ps: ps, prefix: prefix, opts: opts,
		summaries: summary.NewUpdater(fs, opts.Summary),
		log:       opts.Logger.With("worker", opts.ID),
		m:         opts.Metrics,
	}
}

// Run receives notifications until ctx is cancelled, then stops pulling and
// lets the files in flight finish (up to DrainTimeout) before returning.
func (w *Worker) Run(ctx context.Context) error {
	sub := w.ps.Subscriber(names.SubscriptionProcessRaw)
	sub.ReceiveSettings.MaxOutstandingMessages = w.opts.MaxOutstandingMessages
	sub.ReceiveSettings.MaxOutstandingBytes = w.opts.MaxOutstandingBytes
	sub.ReceiveSettings.MaxExtension = w.opts.MaxExtension
	// Each lease extension asks for at most a minute, so the messages of a
	// worker that died (SIGKILL, a lost VM) are delivered again within a
	// minute, not after the client's up to 10-minute extensions.
	sub.ReceiveSettings.MaxDurationPerAckExtension = time.Minute

	// Work outlives ctx: a file in flight at shutdown finishes and is acked
	// rather than redone, unless draining takes longer than DrainTimeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := context.AfterFunc(ctx, func() {
		w.log.Info("shutting down: draining files in flight", "timeout", w.opts.DrainTimeout.String())
		t := time.AfterFunc(w.opts.DrainTimeout, cancelWork)
		context.AfterFunc(work, func() { t.Stop() })
	})
	defer stop()

	w.log.Info("receiving", "subscription", names.SubscriptionProcessRaw)
	err := sub.Receive(ctx, func(_ context.Context, m *pubsub.Message) {
		w.handle(work, m)
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("receive %s: %w", names.SubscriptionProcessRaw, err)
	}
	return nil
}

// Event is the part of a GCS notification the worker needs.
type Event struct {
	Type       string
	Bucket     string
	Object     string
	Generation int64
	// Rewritten is a generation the lifecycle enforcer made by rewriting
	// the object to another storage class: the same data, already processed
	// under its first generation.
	Rewritten bool
}

// ParseEvent reads a GCS Pub/Sub notification (attributes, and the JSON
// object resource as a fallback for the generation).
func ParseEvent(attrs map[string]string, data []byte) (Event, error) {
	e := Event{Type: attrs["eventType"], Bucket: attrs["bucketId"], Object: attrs["objectId"]}
	if e.Type == "" || e.Bucket == "" || e.Object == "" {
		return e, fmt.Errorf("notification without eventType, bucketId or objectId: %d attributes", len(attrs))
	}
	if g := attrs["objectGeneration"]; g != "" {
		n, err := strconv.ParseInt(g, 10, 64)
		if err != nil {
			return e, fmt.Errorf("notification of %s: objectGeneration %q: %w", e.Object, g, err)
		}
		e.Generation = n
	}
	if len(data) > 0 {
		var res struct {
			Generation json.Number       `json:"generation"`
			Metadata   map[string]string `json:"metadata"`
		}
		if err := json.Unmarshal(data, &res); err != nil {
			return e, fmt.Errorf("notification of %s: payload: %w", e.Object, err)
		}
		_, e.Rewritten = res.Metadata[names.MetaLifecycleSourceGeneration]
		if e.Generation == 0 {
			n, err := res.Generation.Int64()
			if err != nil {
				return e, fmt.Errorf("notification of %s: generation %q: %w", e.Object, res.Generation, err)
			}
			e.Generation = n
		}
	}
	if e.Generation <= 0 {
		return e, fmt.Errorf("notification of %s: no generation", e.Object)
	}
	return e, nil
}

const eventFinalize = "OBJECT_FINALIZE"

func (w *Worker) handle(ctx context.Context, m *pubsub.Message) {
	attempt := 1
	if m.DeliveryAttempt != nil {
		attempt = *m.DeliveryAttempt
	}
	ev, err := ParseEvent(m.Attributes, m.Data)
	if err != nil {
		// A poison message: no retry can fix it, but only the dead-letter
		// topic keeps it for an operator, so it goes there by nacks.
		w.log.Error("unreadable notification", "message", m.ID, "attempt", attempt, "err", err)
		w.m.files.WithLabelValues("poison").Inc()
		m.Nack()
		return
	}
	if ev.Type != eventFinalize || ev.Bucket != names.RawBucket(w.prefix) {
		m.Ack() // deletes, metadata updates and other buckets are not ours
		return
	}
	if ev.Rewritten {
		// The lifecycle enforcer moved it to a colder class: same data,
		// processed under its first generation.
		w.log.Info("storage class rewrite, not new data: acked", "object", ev.Object, "generation", ev.Generation)
		w.m.files.WithLabelValues("rewrite").Inc()
		m.Ack()
		return
	}
	w.m.inFlight.Inc()
	defer w.m.inFlight.Dec()
	if _, err := w.Process(ctx, ev, attempt); err != nil {
		m.Nack()
		return
	}
	m.Ack()
}

// Process cleans one raw object generation end to end and returns its
// lineage. It is safe to call again for the same object: a done object is
// not redone, and a partly done one is finished without double effects.
func (w *Worker) Process(ctx context.Context, ev Event, attempt int) (*lineage.Ingestion, error) {
	start := w.opts.Now()
	log := w.log.With("object", ev.Object, "generation", ev.Generation, "attempt", attempt)
	raw, err := names.ParseRawObject(ev.Object)
	if err != nil {
		w.m.files.WithLabelValues("poison").Inc()
		log.Error("object name outside the raw layout", "err", err)
		return nil, err
	}
	rawID, err := names.RawID(ev.Object, ev.Generation)
	if err != nil {
		w.m.files.WithLabelValues("poison").Inc()
		return nil, err
	}
	doc := w.fs.Collection(names.CollectionIngestions).Doc(rawID)
	ing, done, err := w.previous(ctx, doc)
	if err != nil {
		return nil, err
	}
	if done {
		log.Info("already done: acking the redelivery")
		w.m.files.WithLabelValues("duplicate").Inc()
		return ing, nil
	}
	ing = &lineage.Ingestion{
		RawID: rawID, Bucket: ev.Bucket, Object: ev.Object, Generation: ev.Generation,
		Robot: raw.Robot, Date: raw.Date.String(),
		Status: lineage.StatusProcessing, Attempt: attempt, Worker: w.opts.ID, StartedAt: start,
		Reasons: map[string]int64{}, Outputs: []lineage.Output{}, Days: []string{},
	}
	err = w.process(ctx, ev, raw, doc, ing, log)
	ing.Durations.Total = w.opts.Now().Sub(start).Seconds()
	w.m.latency.Observe(ing.Durations.Total)
	if err != nil {
		w.fail(ctx, doc, ing, attempt, err, log)
		return ing, err
	}
	return ing, nil
}

// previous reads the lineage of an earlier attempt.
func (w *Worker) previous(ctx context.Context, doc *firestore.DocumentRef) (*lineage.Ingestion, bool, error) {
	snap, err := doc.Get(ctx)
	if status.Code(err) == codes.NotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read lineage %s: %w", doc.ID, err)
	}
	var ing lineage.Ingestion
	if err := snap.DataTo(&ing); err != nil {
		return nil, false, fmt.Errorf("decode lineage %s: %w", doc.ID, err)
	}
	return &ing, ing.Status == lineage.StatusDone, nil
}

func (w *Worker) process(ctx context.Context, ev Event, raw names.RawObject, doc *firestore.DocumentRef, ing *lineage.Ingestion, log *slog.Logger) error {
	obj := w.st.Bucket(ev.Bucket).Object(ev.Object).Generation(ev.Generation)
	attrs, err := obj.Attrs(ctx)
	if err != nil {
		return fmt.Errorf("stat %s#%d: %w", ev.Object, ev.Generation, err)
	}
	ing.Size, ing.CRC32C = attrs.Size, attrs.CRC32C
	if _, err := doc.Set(ctx, ing); err != nil {
		return fmt.Errorf("write lineage %s: %w", ing.RawID, err)
	}
	if ing.ContentHash, err = w.contentHash(ctx, obj, attrs); err != nil {
		return err
	}

	cleanStart := w.opts.Now()
	r, err := obj.NewReader(ctx)
	if err != nil {
		return fmt.Errorf("open %s#%d: %w", ev.Object, ev.Generation, err)
	}
	defer r.Close()
	// A summary transaction, once started, runs to its end even when ctx
	// is cancelled: a client cancelled mid-transaction cannot roll back, and
	// its locks would hold the patients until Firestore expires them.
	// Cancelling ctx stops the file between batches instead.
	sumCtx, cancelSum := context.WithTimeout(context.WithoutCancel(ctx), summaryTimeout)
	defer cancelSum()
	run := w.summaries.Begin(ing.ContentHash)
	sink := newGCSSink(ctx, w.st, w.prefix, ev.Object, ev.Generation, &adder{run: run, ctx: sumCtx, stop: ctx})
	rep, err := clean.Clean(ctx, r, clean.Source{Object: ev.Object, Generation: ev.Generation, Robot: raw.Robot}, sink, w.opts.Clean)
	if err != nil {
		sink.Abort()
		_, serr := run.Abort() // wait for its transactions; each committed batch is exact on its own
		return errors.Join(fmt.Errorf("clean %s#%d: %w", ev.Object, ev.Generation, err), serr)
	}
	curated, quarantined, err := sink.Close()
	if err != nil {
		_, serr := run.Abort()
		return errors.Join(err, serr)
	}
	ing.Durations.Clean = w.opts.Now().Sub(cleanStart).Seconds()
	sumStart := w.opts.Now()
	stats, err := run.Close(sumCtx)
	if err == nil {
		err = ctx.Err() // cancelled while the last batches committed: not done
	}
	if err != nil {
		return fmt.Errorf("summaries of %s#%d: %w", ev.Object, ev.Generation, err)
	}
	ing.Durations.Summaries = w.opts.Now().Sub(sumStart).Seconds()

	ing.SchemaVersion, ing.HeaderError = rep.SchemaVersion, rep.HeaderError
	ing.RowsIn, ing.RowsValid, ing.RowsQuarantined, ing.RowsSuperseded = rep.RowsIn, rep.RowsValid, rep.RowsQuarantined, rep.RowsSuperseded
	ing.Reasons = rep.Reasons
	ing.Outputs, ing.Quarantine = curated, quarantined
	if ing.Outputs == nil {
		ing.Outputs = []lineage.Output{}
	}
	for _, d := range rep.Days {
		ing.Days = append(ing.Days, d.Date.String())
	}
	ing.Summaries = lineage.Summaries{Patients: int64(stats.Patients), Results: int64(stats.Results), Batches: int64(stats.Batches),
		BatchesSkipped: int64(stats.BatchesSkipped), TxnRetries: int64(stats.TxnRetries)}
	ing.Status, ing.Error, ing.FinishedAt = lineage.StatusDone, "", w.opts.Now()
	ing.Durations.Total = w.opts.Now().Sub(ing.StartedAt).Seconds()
	if _, err := doc.Set(ctx, ing); err != nil {
		return fmt.Errorf("write lineage %s: %w", ing.RawID, err)
	}

	w.m.observe(rep)
	if rep.HeaderError != "" {
		log.Error("ALERT: unknown header: the whole file is quarantined", "alert", true, "rows", rep.RowsIn, "detail", rep.HeaderError)
	}
	log.Info("processed", "schema", rep.SchemaVersion, "rows_in", rep.RowsIn, "valid", rep.RowsValid,
		"quarantined", rep.RowsQuarantined, "superseded", rep.RowsSuperseded, "patients", stats.Patients,
		"seconds", ing.Durations.Total)
	return nil
}

// contentHash keys the summary markers: the MD5 GCS keeps for every object
// uploaded in one piece, or a SHA-256 read from the object otherwise.
func (w *Worker) contentHash(ctx context.Context, obj *storage.ObjectHandle, attrs *storage.ObjectAttrs) (string, error) {
	if len(attrs.MD5) == 16 {
		return "md5:" + hex.EncodeToString(attrs.MD5), nil
	}
	r, err := obj.NewReader(ctx)
	if err != nil {
		return "", fmt.Errorf("open %s for hashing: %w", attrs.Name, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", fmt.Errorf("hash %s: %w", attrs.Name, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// fail records a failed attempt in lineage: retrying, or failed when this
// was the last delivery before the dead-letter topic.
func (w *Worker) fail(ctx context.Context, doc *firestore.DocumentRef, ing *lineage.Ingestion, attempt int, cause error, log *slog.Logger) {
	ing.Status = lineage.StatusRetrying
	outcome := "retry"
	if attempt >= names.MaxDeliveryAttempts {
		ing.Status, outcome = lineage.StatusFailed, "failed"
	}
	ing.Error = cause.Error()
	ing.FinishedAt = w.opts.Now()
	w.m.files.WithLabelValues(outcome).Inc()
	// Recorded even when the attempt failed because work was cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := doc.Set(rctx, ing); err != nil {
		log.Error("attempt failed and its lineage could not be written", "err", errors.Join(cause, err))
		return
	}
	log.Error("attempt failed", "status", ing.Status, "err", cause)
}

// summaryTimeout bounds a file's summary transactions once they are no
// longer cancelled with the file.
const summaryTimeout = 5 * time.Minute

// adder adapts a summary run to the sink: results go to the run under ctx,
// and stop when the file is cancelled (stop).
type adder struct {
	run  *summary.Run
	ctx  context.Context
	stop context.Context
}

func (a *adder) Add(_ context.Context, r clean.Result) error {
	if err := a.stop.Err(); err != nil {
		return err
	}
	return a.run.Add(a.ctx, summary.Result{
		PatientID: r.PatientID, TestCode: r.TestCode, SampleID: r.SampleID, Unit: r.Unit,
		Flag: r.Flag, Status: r.Status, Value: r.Value, CollectedAt: r.CollectedAt, AnalyzedAt: r.AnalyzedAt,
	})
}
