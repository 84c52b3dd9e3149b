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

// Limits of one commit. MaxWritesPerCommit is Firestore's historical limit
// of writes in one commit (no longer enforced, kept as a bound on a
// commit's work); MaxCommitBytes keeps a commit, whose request carries
// every document it writes, clear of Firestore's 10 MiB request limit,
// with a margin for the estimate (Firestore's storage-size rules, not the
// request's encoding). A batch whose changes would exceed either is
// committed in parts (see Run).
const (
	MaxWritesPerCommit = 500
	MaxCommitBytes     = 8 << 20
)

// DefaultPatientsPerTxn is PatientsPerTxn's default and maximum: a patient
// changed by a batch writes at least two documents, its summary and its
// ledger's root (or a shard), and the marker is one more write.
const DefaultPatientsPerTxn = (MaxWritesPerCommit - 1) / 2

// Options are the Updater's optional settings.
type Options struct {
	// PatientsPerTxn is how many consecutive patients one transaction
	// folds. Default (and maximum; larger values are lowered to it)
	// DefaultPatientsPerTxn = 249. It is part of the marker key (see Run).
	// A batch whose writes would exceed MaxWritesPerCommit or
	// MaxCommitBytes (patients with many shards changed, ledgers migrated
	// or split) is committed in parts, which costs the attempt that found
	// it too large; choose fewer where that is common.
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
	// A commit's limits: MaxWritesPerCommit and MaxCommitBytes (tests
	// lower them).
	maxWrites, maxBytes int
}

// NewUpdater returns an Updater writing through client.
func NewUpdater(client *firestore.Client, opts Options) *Updater {
	if opts.PatientsPerTxn <= 0 || opts.PatientsPerTxn > DefaultPatientsPerTxn {
		opts.PatientsPerTxn = DefaultPatientsPerTxn
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Updater{
		client:    client,
		opts:      opts,
		markers:   client.Collection(names.CollectionSummaryMarkers),
		patient:   client.Collection(names.CollectionPatients),
		maxWrites: MaxWritesPerCommit,
		maxBytes:  MaxCommitBytes,
	}
}

// Stats describe a Run.
type Stats struct {
	Patients        int // distinct patients added
	Results         int // results added
	Batches         int // batches done: applied, or skipped
	BatchesSkipped  int // batches whose marker existed: nothing changed
	PatientsUpdated int // patient documents written (a result changed them)
	LedgersMigrated int // patient documents whose ledger was moved out of them
	Commits         int // commits that wrote: more than one for a batch committed in parts
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
// (MarkerID), every patient document and its ledger's root (one GetAll),
// then the ledger shards the results fall in (a second GetAll, only for
// ledgers large enough to be sharded) and, only for a sharded ledger in
// which a result replaces a counted one, or one to migrate, its other
// shards (a third). If the marker is missing it folds the results (Fold),
// writes the changed documents and creates the marker, in one commit. So
// a redelivered message, a crashed run started again, or the same content
// uploaded under another name, finds its markers and changes nothing. The
// marker key's contract is (content hash, PatientsPerTxn, batch index):
// rerunning content with another PatientsPerTxn cannot use the earlier
// markers, and is then still exactly once only through the ledger (Fold
// ignores what it counted already).
//
// A batch whose commit would exceed MaxWritesPerCommit or MaxCommitBytes is
// committed in parts, halving its patients until each part fits; the last
// part creates the marker, so a crash between parts leaves no marker and
// the rerun's ledger skips what the earlier parts counted. A single
// patient's changes larger than one commit (about 8 MiB of changed shards:
// some 100,000 of its results in one file) fail the batch.
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
		r.stats.LedgersMigrated += res.migrated
		r.stats.Commits += res.commits
	})
	return nil
}

type applied struct {
	skipped  bool
	updated  int
	migrated int
	commits  int
	retries  int
}

func (a applied) plus(b applied) applied {
	return applied{
		skipped:  a.skipped || b.skipped,
		updated:  a.updated + b.updated,
		migrated: a.migrated + b.migrated,
		commits:  a.commits + b.commits,
		retries:  a.retries + b.retries,
	}
}

// overBudget aborts a transaction whose commit would exceed a commit's
// limits.
type overBudget struct{ writes, bytes int }

func (e *overBudget) Error() string {
	return fmt.Sprintf("commit of %d writes and about %d bytes is over the limit", e.writes, e.bytes)
}

// apply applies batch index.
func (u *Updater) apply(ctx context.Context, hash string, index int, batch []patientResults) (applied, error) {
	markerRef := u.markers.Doc(MarkerID(hash, u.opts.PatientsPerTxn, index))
	nres := 0
	for _, p := range batch {
		nres += len(p.results)
	}
	m := marker{
		ContentHash:    hash,
		Batch:          index,
		PatientsPerTxn: u.opts.PatientsPerTxn,
		Patients:       len(batch),
		Results:        nres,
		FirstPatient:   batch[0].id,
		LastPatient:    batch[len(batch)-1].id,
	}

	// A batch whose marker exists is done: its commit created the marker.
	// Looking outside a transaction first spares a redelivery reading and
	// locking every patient document of the batch.
	if snaps, err := u.client.GetAll(ctx, []*firestore.DocumentRef{markerRef}); err != nil {
		u.opts.Metrics.observe(applied{}, err)
		return applied{}, fmt.Errorf("summary batch %s: read marker: %w", markerRef.ID, err)
	} else if snaps[0].Exists() {
		out := applied{skipped: true}
		u.opts.Metrics.observe(out, nil)
		return out, nil
	}

	out, err := u.commit(ctx, markerRef, m, batch, true)
	u.opts.Metrics.observe(out, err)
	if err != nil {
		return out, fmt.Errorf("summary batch %s (%d patients): %w", markerRef.ID, len(batch), err)
	}
	return out, nil
}

// commit applies parts in one transaction, which creates the marker when
// last is true. When that commit would exceed the limits it applies the
// first half of parts and then the second, each the same way, the marker
// coming with the very last commit: a crash in between leaves no marker, and
// the rerun's ledger skips what the first commits counted.
func (u *Updater) commit(ctx context.Context, markerRef *firestore.DocumentRef, m marker, parts []patientResults, last bool) (applied, error) {
	out, err := u.txn(ctx, markerRef, m, parts, last)
	var over *overBudget
	if !errors.As(err, &over) {
		return out, err
	}
	if len(parts) == 1 {
		return out, fmt.Errorf("one patient's changes need a commit of %d writes and about %d bytes, over the limit of %d writes and %d bytes",
			over.writes, over.bytes, u.maxWrites, u.maxBytes)
	}
	out = applied{retries: out.retries} // the attempt wrote nothing
	h := len(parts) / 2
	first, err := u.commit(ctx, markerRef, m, parts[:h], false)
	out = out.plus(first)
	if err != nil || first.skipped {
		return out, err
	}
	second, err := u.commit(ctx, markerRef, m, parts[h:], last)
	return out.plus(second), err
}

// patientState is a patient of a transaction: its document as read, its
// ledger, and the ledger still inside a document written before the
// ledger moved out (nil when none).
type patientState struct {
	ref    *firestore.DocumentRef
	doc    contract.Patient
	legacy contract.Ledger
	ledger *patientLedger
}

// stored is a patient document as read: the summary, and the ledger
// (contract.FieldLegacyCounted) that documents written before the ledger
// moved out still hold.
type stored struct {
	contract.Patient
	Legacy contract.Ledger `firestore:"counted"`
}

// txn runs one transaction over parts: it reads the marker, the patient
// documents, their ledgers' roots and the shards the results fall in (all
// of a ledger's shards when it is migrated or a result replaces a counted
// one), folds, and writes the changed documents, with the marker when
// createMarker is true. It returns an *overBudget error, having written
// nothing, when the commit would exceed the limits.
func (u *Updater) txn(ctx context.Context, markerRef *firestore.DocumentRef, m marker, parts []patientResults, createMarker bool) (applied, error) {
	var out applied
	attempts := 0
	err := u.client.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
		attempts++
		out = applied{}
		refs := make([]*firestore.DocumentRef, 0, 1+2*len(parts))
		refs = append(refs, markerRef)
		states := make([]*patientState, len(parts))
		for i, p := range parts {
			states[i] = &patientState{ref: u.patient.Doc(p.id)}
			refs = append(refs, states[i].ref, states[i].ref.Collection(contract.CollectionLedger).Doc(contract.LedgerDocID("")))
		}
		snaps, err := tx.GetAll(refs)
		if err != nil {
			return err
		}
		if snaps[0].Exists() {
			out.skipped = true
			return nil
		}
		for i, st := range states {
			doc, root := snaps[1+2*i], snaps[2+2*i]
			if doc.Exists() {
				var s stored
				if err := doc.DataTo(&s); err != nil {
					return fmt.Errorf("decode patient document %d of the batch: %w", i, err)
				}
				st.doc, st.legacy = s.Patient, s.Legacy
			}
			if st.ledger, err = newPatientLedger(st.ref.Collection(contract.CollectionLedger), root, !doc.Exists()); err != nil {
				return fmt.Errorf("patient %d of the batch: %w", i, err)
			}
		}
		// The shards the results fall in; every shard of a ledger to migrate.
		if err := loadShards(tx, states, func(i int, st *patientState) ([]string, error) {
			return st.ledger.missing(parts[i].results, st.legacy != nil)
		}); err != nil {
			return err
		}
		// Every shard of a ledger in which a result replaces a counted one:
		// Fold rebuilds the test's Min, Max, Last and Recent from all of it.
		if err := loadShards(tx, states, func(i int, st *patientState) ([]string, error) {
			if st.ledger.complete() || !replaces(st.ledger.view(), parts[i].results) {
				return nil, nil
			}
			return st.ledger.missing(nil, true)
		}); err != nil {
			return err
		}

		now := u.opts.Now()
		var ws []write
		for i, st := range states {
			w, changed, err := st.fold(parts[i], now)
			if err != nil {
				return fmt.Errorf("patient %d of the batch: %w", i, err)
			}
			ws = append(ws, w...)
			if changed {
				out.updated++
			}
			if st.legacy != nil {
				out.migrated++
			}
		}
		writes, bytes := len(ws), 0
		for _, w := range ws {
			bytes += w.bytes
		}
		if createMarker {
			writes, bytes = writes+1, bytes+512
		}
		if writes == 0 {
			return nil
		}
		if writes > u.maxWrites || bytes > u.maxBytes {
			return &overBudget{writes: writes, bytes: bytes}
		}
		for _, w := range ws {
			if w.data == nil {
				err = tx.Delete(w.ref)
			} else {
				err = tx.Set(w.ref, w.data)
			}
			if err != nil {
				return err
			}
		}
		out.commits = 1
		if !createMarker {
			return nil
		}
		m.CreatedAt = now
		return tx.Create(markerRef, m)
	})
	out.retries += max(attempts-1, 0)
	return out, err
}

// loadShards reads, in one GetAll, the shards need names for each patient.
func loadShards(tx *firestore.Transaction, states []*patientState, need func(int, *patientState) ([]string, error)) error {
	type at struct {
		st     *patientState
		prefix string
	}
	var refs []*firestore.DocumentRef
	var ats []at
	for i, st := range states {
		prefixes, err := need(i, st)
		if err != nil {
			return fmt.Errorf("patient %d of the batch: %w", i, err)
		}
		for _, p := range prefixes {
			refs = append(refs, st.ledger.ref(p))
			ats = append(ats, at{st: st, prefix: p})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	snaps, err := tx.GetAll(refs)
	if err != nil {
		return err
	}
	for i, snap := range snaps {
		if err := ats[i].st.ledger.load(ats[i].prefix, snap); err != nil {
			return err
		}
	}
	return nil
}

// fold folds a patient's results into its document and ledger, moving a
// legacy ledger into the ledger's documents, and returns the writes, and
// whether a result changed the summary.
func (st *patientState) fold(p patientResults, now time.Time) ([]write, bool, error) {
	l := st.ledger
	for test, samples := range st.legacy {
		for id, c := range samples {
			if err := l.put(test, id, c); err != nil {
				return nil, false, err
			}
		}
	}
	view := l.view()
	type key struct{ test, sample string }
	before := make(map[key]contract.Counted, len(p.results))
	for _, r := range p.results {
		before[key{r.TestCode, r.SampleID}] = view[r.TestCode][r.SampleID]
	}
	changed := Fold(&st.doc, view, p.results) > 0
	for k, old := range before {
		if c := view[k.test][k.sample]; c != old {
			if err := l.put(k.test, k.sample, c); err != nil {
				return nil, false, err
			}
		}
	}
	l.split()
	ws := l.writes()
	if changed || st.legacy != nil {
		if changed {
			st.doc.UpdatedAt = now
		}
		st.doc.PatientID = p.id
		ws = append(ws, write{ref: st.ref, data: &st.doc, bytes: patientBytes(&st.doc)})
	}
	return ws, changed, nil
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
