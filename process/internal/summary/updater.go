package summary

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"

	"github.com/labplatform/platform/contracts/names"
	contract "github.com/labplatform/platform/contracts/summary"
)

// MaxWritesPerCommit is Firestore's historical limit of writes in one
// commit; a batch writes at most one document per patient plus its marker.
const MaxWritesPerCommit = 500

// Options are the Updater's optional settings.
type Options struct {
	// PatientsPerTxn is how many consecutive patients one transaction
	// folds. Default (and maximum; larger values are lowered to it)
	// MaxWritesPerCommit-1 = 499: one write per patient plus the marker.
	// It is part of the marker key (see Run). A commit carries the batch's
	// whole documents and Firestore refuses requests over 10 MiB (the
	// emulator does not), so where patients have long histories (large
	// ledgers) choose fewer: 499 patients fit while documents average
	// under about 20 KiB.
	PatientsPerTxn int
	// Parallel is how many transactions are in flight at once, and so how
	// many batches are held in memory. Default 8.
	Parallel int
	// Now stamps updated_at and the markers' created_at. Default time.Now.
	Now func() time.Time
	// Metrics, when not nil, count transactions, retries and updates.
	Metrics *Metrics
}

// Updater folds cleaned results into the patient summary documents
// (names.CollectionPatients), exactly once per raw object content.
type Updater struct {
	client  *firestore.Client
	opts    Options
	markers *firestore.CollectionRef
	patient *firestore.CollectionRef
}

// NewUpdater returns an Updater writing through client.
func NewUpdater(client *firestore.Client, opts Options) *Updater {
	if opts.PatientsPerTxn <= 0 || opts.PatientsPerTxn > MaxWritesPerCommit-1 {
		opts.PatientsPerTxn = MaxWritesPerCommit - 1
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Updater{
		client:  client,
		opts:    opts,
		markers: client.Collection(names.CollectionSummaryMarkers),
		patient: client.Collection(names.CollectionPatients),
	}
}

// Stats describe a Run.
type Stats struct {
	Patients        int // distinct patients added
	Results         int // results added
	Batches         int // batches done: applied, or skipped
	BatchesSkipped  int // batches whose marker existed: nothing changed
	PatientsUpdated int // patient documents written (a result changed them)
	TxnRetries      int // transaction attempts beyond the first (contention)
}

// marker is the document summary_markers/<content hash>-p<patients per
// transaction>-b<batch index>, created in the commit that applies the batch.
type marker struct {
	ContentHash    string    `firestore:"content_hash"`
	Batch          int       `firestore:"batch"`
	PatientsPerTxn int       `firestore:"patients_per_txn"`
	Patients       int       `firestore:"patients"`
	Results        int       `firestore:"results"`
	FirstPatient   string    `firestore:"first_patient"`
	LastPatient    string    `firestore:"last_patient"`
	CreatedAt      time.Time `firestore:"created_at"`
}

// MarkerID is the id of the marker of batch index of the content whose hash
// is contentHash ("<algorithm>:<lowercase hex>"), cut into batches of
// patientsPerTxn patients.
func MarkerID(contentHash string, patientsPerTxn, index int) string {
	return contentHash + "-p" + strconv.Itoa(patientsPerTxn) + "-b" + strconv.Itoa(index)
}

// Run is one pass of a raw object's cleaned results through the Updater.
// Its methods are for one goroutine; transactions run in the background.
//
// Results arrive sorted by patient id and are cut into batches of
// PatientsPerTxn consecutive patients: batch i holds patients
// i*PatientsPerTxn to (i+1)*PatientsPerTxn-1 in that order, whatever the
// timing. One transaction applies a batch: it reads the batch's marker
// (MarkerID) and every patient document, and if the marker is missing
// folds the results (Fold), writes the changed documents and creates the
// marker, in one commit. So a redelivered message, a crashed run started
// again, or the same content uploaded under another name, finds its
// markers and changes nothing. The marker key's contract is (content hash,
// PatientsPerTxn, batch index): rerunning content with another
// PatientsPerTxn cannot use the earlier markers, and is then still exactly
// once only through the ledger (Fold ignores what it counted already).
type Run struct {
	u    *Updater
	hash string

	// Filled by Add, on the caller's goroutine.
	patient  string   // current patient
	group    []Result // its results
	batch    []patientResults
	next     int // index of the next batch
	closed   bool
	patients int
	results  int

	sem chan struct{} // one token per transaction in flight
	wg  sync.WaitGroup

	mu    sync.Mutex // guards the fields below, written by transactions
	err   error
	stats Stats
}

type patientResults struct {
	id      string
	results []Result
}

// Begin starts a run for the content whose hash is contentHash: an
// algorithm name and the digest in lowercase hex, such as "md5:<32 hex>"
// (the object's MD5 as GCS reports it) or "sha256:<64 hex>".
func (u *Updater) Begin(contentHash string) *Run {
	r := &Run{u: u, hash: contentHash, sem: make(chan struct{}, u.opts.Parallel)}
	if !validHash(contentHash) {
		r.err = fmt.Errorf("summary run: content hash %q is not <md5|sha256>:<lowercase hex digest>", contentHash)
	}
	return r
}

func validHash(h string) bool {
	alg, digest, ok := strings.Cut(h, ":")
	want := map[string]int{"md5": 32, "sha256": 64}[alg]
	return ok && want > 0 && len(digest) == want && strings.Trim(digest, "0123456789abcdef") == ""
}

// Add adds one result. Results must come sorted by patient id (byte order,
// as Go compares strings); the results
// of one patient may come in any order. Add blocks while Parallel
// transactions are in flight, and a transaction it starts runs with ctx.
// After an error (its own, or a transaction's) the run is dead: every later
// Add and Close return an error.
func (r *Run) Add(ctx context.Context, res Result) error {
	if err := r.failed(); err != nil {
		return err
	}
	if r.closed {
		return errors.New("summary run: Add after Close")
	}
	if err := validate(res); err != nil {
		return r.fail(err)
	}
	if res.PatientID != r.patient {
		if res.PatientID < r.patient {
			return r.fail(fmt.Errorf("summary run: result %d: results are not sorted by patient id", r.results+1))
		}
		if err := r.endPatient(ctx); err != nil {
			return err
		}
		r.patient = res.PatientID
		r.patients++
	}
	r.group = append(r.group, res)
	r.results++
	return nil
}

// Close applies what is left, waits for every transaction and returns the
// run's statistics. Stats count what was done even when there is an error.
func (r *Run) Close(ctx context.Context) (Stats, error) {
	var err error
	if r.closed {
		err = errors.New("summary run: Close called twice")
	} else if err = r.failed(); err == nil {
		if err = r.endPatient(ctx); err == nil && len(r.batch) > 0 {
			err = r.dispatch(ctx)
		}
	}
	r.closed = true
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Patients, st.Results = r.patients, r.results
	if err == nil {
		err = r.err
	}
	return st, err
}

// Abort ends a run whose input stopped early (the file failed or was
// cancelled): it waits for the transactions in flight but, unlike Close,
// never commits the batch being filled. That batch holds only the patients
// seen so far, and committing it would create its marker, so a rerun of the
// whole content would skip the batch's other patients.
func (r *Run) Abort() (Stats, error) {
	r.closed = true
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Patients, st.Results = r.patients, r.results
	return st, r.err
}

func (r *Run) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *Run) fail(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	return err
}

// endPatient moves the current patient's results into the batch and starts
// the batch's transaction when it is full.
func (r *Run) endPatient(ctx context.Context) error {
	if len(r.group) == 0 {
		return nil
	}
	r.batch = append(r.batch, patientResults{id: r.patient, results: r.group})
	r.group = nil
	if len(r.batch) < r.u.opts.PatientsPerTxn {
		return nil
	}
	return r.dispatch(ctx)
}

// dispatch starts the transaction of the current batch, waiting for a slot.
func (r *Run) dispatch(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return r.fail(fmt.Errorf("summary run %s: start batch %d: %w", r.hash, r.next, err))
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return r.fail(fmt.Errorf("summary run %s: wait to start batch %d: %w", r.hash, r.next, ctx.Err()))
	}
	b, index := r.batch, r.next
	r.batch, r.next = nil, r.next+1
	r.wg.Go(func() {
		defer func() { <-r.sem }()
		res, err := r.u.apply(ctx, r.hash, index, b)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.stats.TxnRetries += res.retries
		if err != nil {
			if r.err == nil {
				r.err = err
			}
			return
		}
		r.stats.Batches++
		if res.skipped {
			r.stats.BatchesSkipped++
		}
		r.stats.PatientsUpdated += res.updated
	})
	return nil
}

type applied struct {
	skipped bool
	updated int
	retries int
}

// apply runs the transaction of batch index.
func (u *Updater) apply(ctx context.Context, hash string, index int, batch []patientResults) (applied, error) {
	markerRef := u.markers.Doc(MarkerID(hash, u.opts.PatientsPerTxn, index))
	refs := make([]*firestore.DocumentRef, 0, len(batch)+1)
	refs = append(refs, markerRef)
	nres := 0
	for _, p := range batch {
		refs = append(refs, u.patient.Doc(p.id))
		nres += len(p.results)
	}

	// A batch whose marker exists is done: its commit created the marker.
	// Looking outside a transaction first spares a redelivery reading and
	// locking every patient document of the batch.
	if snaps, err := u.client.GetAll(ctx, refs[:1]); err != nil {
		u.opts.Metrics.observe(applied{}, err)
		return applied{}, fmt.Errorf("summary batch %s: read marker: %w", markerRef.ID, err)
	} else if snaps[0].Exists() {
		out := applied{skipped: true}
		u.opts.Metrics.observe(out, nil)
		return out, nil
	}

	var out applied
	attempts := 0
	err := u.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		attempts++
		out = applied{}
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		if snaps[0].Exists() {
			out.skipped = true
			return nil
		}
		now := u.opts.Now()
		for i, p := range batch {
			doc := &contract.Patient{}
			if snaps[i+1].Exists() {
				if err := snaps[i+1].DataTo(doc); err != nil {
					return fmt.Errorf("decode patient document %d of batch %d: %w", i, index, err)
				}
			}
			if Fold(doc, p.results) == 0 {
				continue
			}
			doc.PatientID = p.id
			doc.UpdatedAt = now
			if err := tx.Set(refs[i+1], doc); err != nil {
				return err
			}
			out.updated++
		}
		return tx.Create(markerRef, marker{
			ContentHash:    hash,
			Batch:          index,
			PatientsPerTxn: u.opts.PatientsPerTxn,
			Patients:       len(batch),
			Results:        nres,
			FirstPatient:   batch[0].id,
			LastPatient:    batch[len(batch)-1].id,
			CreatedAt:      now,
		})
	})
	out.retries = max(attempts-1, 0)
	u.opts.Metrics.observe(out, err)
	if err != nil {
		return out, fmt.Errorf("summary batch %s (%d patients): %w", markerRef.ID, len(batch), err)
	}
	return out, nil
}

// validate checks what Firestore needs of a result: the patient id is a
// document id, test code and sample id are non-empty map keys. Errors of
// this package name no patient or sample: they end up in logs and lineage.
func validate(r Result) error {
	var problems []string
	switch id := r.PatientID; {
	case id == "" || id == "." || id == "..":
		problems = append(problems, "patient id is not a document id")
	case strings.Contains(id, "/"):
		problems = append(problems, "patient id contains '/'")
	case len(id) > 1500:
		problems = append(problems, "patient id is longer than 1,500 bytes")
	case strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"):
		problems = append(problems, "patient id is reserved (__...__)")
	}
	if r.TestCode == "" {
		problems = append(problems, "empty test code")
	}
	if r.SampleID == "" {
		problems = append(problems, "empty sample id")
	}
	if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) {
		problems = append(problems, fmt.Sprintf("value %g is not finite", r.Value))
	}
	if problems == nil {
		return nil
	}
	// No ids in the message: it reaches logs and lineage.
	return fmt.Errorf("summary run: result of test %q: %s", r.TestCode, strings.Join(problems, "; "))
}
