// Package enforce owns the lifecycle enforcer: it evaluates the storage
// policies (package policy) against the objects of a deployment's buckets
// and carries out what they decide, rewriting an object in place to a colder
// storage class or deleting it. It does so where GCS's native lifecycle does
// not run (the emulator) and for the data-aware rules GCS cannot express: a
// raw object is deleted only once its lineage says its curated Parquet
// exists and every day of it was loaded into BigQuery after it was
// processed, whatever its age.
//
// Run lists each bucket page by page, keeps no state of its own between
// runs, and makes every change conditional on the generation it listed, so
// it is idempotent and safe to interrupt: each action is atomic on its own,
// and an object that someone else changed between the listing and the action
// is skipped, never clobbered.
//
// Errors: Run returns an error, with the report of what was done so far,
// when a bucket cannot be listed or lineage cannot be read, when ctx ends,
// and when any single action failed (the report's Errors say which).
// Precondition failures and objects already gone are not errors: they count
// as Skipped.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/names"
	"github.com/labplatform/platform/lifecycle/policy"
)

// Action kinds.
const (
	KindDelete          = "delete"
	KindSetStorageClass = "set_storage_class"
)

// Metadata the enforcer writes on an object it rewrites to another storage
// class. A rewrite makes a new generation with a new creation time, which a
// native lifecycle transition does not; these keep what the rules and the
// lineage need of the generation first uploaded.
const (
	// MetaCreated holds the creation time (RFC 3339) of the generation
	// first uploaded: ages are counted from it, as GCS counts them from
	// the creation of an object its lifecycle moved.
	MetaCreated = names.MetaLifecycleCreated
	// MetaSourceGeneration holds that generation: the lineage document of
	// a raw object is keyed by it (names.RawID).
	MetaSourceGeneration = names.MetaLifecycleSourceGeneration
)

// lineageBatch is how many lineage or day-load documents one Firestore
// GetAll reads.
const lineageBatch = 300

// listedAttrs are the object attributes a listing asks for: what
// evaluation needs and what a rewrite must carry over.
var listedAttrs = []string{
	"Name", "Generation", "Size", "StorageClass", "Created", "CustomTime", "Deleted", "Metadata",
	"ContentType", "ContentEncoding", "ContentLanguage", "ContentDisposition", "CacheControl",
}

// Options configure Run; the zero value is usable.
type Options struct {
	// Now is the clock; Run judges every age at the one instant it returns
	// when the run starts. Default time.Now.
	Now func() time.Time
	// DryRun plans only: the report's Planned and Held say what a real run
	// would do, and nothing is changed.
	DryRun bool
	// PageSize is how many objects one list request asks for; default 1000
	// (the GCS maximum).
	PageSize int
	// Workers is how many actions (and curated-object checks) run at once;
	// default 8.
	Workers int
	// EnforcerOnly leaves the rules GCS carries out itself to GCS: an
	// object whose due action is a native rule's is counted in LeftToGCS
	// and not touched. Use it on GCP, where `lifecycle apply` installed
	// those rules as the buckets' lifecycle configuration, so the enforcer
	// does not race GCS (nor pay for rewrites GCS does for free). Leave it
	// off where no native lifecycle runs (the emulator).
	EnforcerOnly bool
	// SkipNoncurrent leaves noncurrent versions alone: they are not
	// listed, so rules on them never apply. Set it on fake-gcs-server, whose
	// delete of a noncurrent generation deletes the live object instead.
	SkipNoncurrent bool
	// Logger receives the summary line (Info) and one line per action,
	// held object and skip (Debug). Default slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Clients are the clients Run uses. Firestore is needed only when a policy
// has a requires_loaded rule.
type Clients struct {
	Storage   *storage.Client
	Firestore *firestore.Client
}

// Action is one change to one object generation.
type Action struct {
	Bucket     string `json:"bucket"`
	Object     string `json:"object"`
	Generation int64  `json:"generation"`
	// Kind is KindDelete or KindSetStorageClass.
	Kind string `json:"kind"`
	// From is the object's class; To the new one (set_storage_class only).
	From policy.Class `json:"from"`
	To   policy.Class `json:"to,omitempty"`
	// Size is the object's size in bytes.
	Size int64 `json:"size"`
	// Rule is the index of the deciding rule in the bucket's rules.
	Rule int `json:"rule"`
	// Reason names the rule and the condition that held.
	Reason string `json:"reason"`
}

// Held is a raw object a requires_loaded rule would delete but its data is
// not known to be loaded: Why says which check failed.
type Held struct {
	Bucket     string `json:"bucket"`
	Object     string `json:"object"`
	Generation int64  `json:"generation"`
	Why        string `json:"why"`
}

// Report is what a run did (or, in a dry run, would do).
type Report struct {
	DryRun bool      `json:"dry_run"`
	Now    time.Time `json:"now"`
	// Scanned counts the object versions evaluated.
	Scanned int `json:"scanned"`
	// Planned are the actions decided; Done those carried out.
	Planned []Action `json:"planned"`
	Done    []Action `json:"done"`
	// Held are the raw objects whose deletion the data-aware rule refused.
	Held []Held `json:"held"`
	// Skipped counts actions not taken because the object changed or went
	// away after it was listed, and storage class moves of noncurrent
	// versions (a rewrite would make them live again).
	Skipped int `json:"skipped"`
	// LeftToGCS counts objects whose due action GCS's native lifecycle
	// carries out (Options.EnforcerOnly).
	LeftToGCS int `json:"left_to_gcs"`
	// Errors are the actions (or checks) that failed, one line each.
	Errors []string `json:"errors"`
	// BytesDeleted and BytesMoved add up the sizes of the objects deleted
	// and rewritten (planned ones in a dry run).
	BytesDeleted int64 `json:"bytes_deleted"`
	BytesMoved   int64 `json:"bytes_moved"`
}

// Summary is the report in one line.
func (r *Report) Summary() string {
	verb := "done"
	n := len(r.Done)
	if r.DryRun {
		verb, n = "planned", len(r.Planned)
	}
	return fmt.Sprintf("scanned %d, %s %d (deleted %d B, moved %d B), held %d, skipped %d, left to GCS %d, errors %d",
		r.Scanned, verb, n, r.BytesDeleted, r.BytesMoved, len(r.Held), r.Skipped, r.LeftToGCS, len(r.Errors))
}

// Run enforces the policies of f on the buckets of the deployment with the
// given bucket prefix, at the instant opts.Now returns. It returns the report
// whatever happens (see the package errors).
func Run(ctx context.Context, c Clients, f *policy.File, prefix string, opts Options) (*Report, error) {
	opts.defaults()
	start := opts.Now()
	e := &enforcer{c: c, opts: opts, now: start, log: opts.Logger, rep: Report{DryRun: opts.DryRun, Now: start}}
	if err := e.check(f, prefix); err != nil {
		return &e.rep, err
	}
	e.loads = &loadChecker{fs: c.Firestore, st: c.Storage, workers: opts.Workers, days: map[string]*dayLoad{}}
	e.pool.SetLimit(opts.Workers)

	var runErr error
	for _, role := range policy.Roles() {
		b, ok := f.Buckets[role]
		if !ok {
			continue
		}
		bucket, err := policy.BucketName(prefix, role)
		if err != nil {
			runErr = fmt.Errorf("enforce: %w", err)
			break
		}
		if err := e.scan(ctx, bucket, b); err != nil {
			runErr = fmt.Errorf("enforce gs://%s: %w", bucket, err)
			break
		}
	}
	_ = e.pool.Wait() // the actions record their own errors

	rep := &e.rep
	e.log.Info("lifecycle enforce", "dry_run", opts.DryRun, "now", start, "prefix", prefix,
		"scanned", rep.Scanned, "planned", len(rep.Planned), "done", len(rep.Done), "held", len(rep.Held),
		"skipped", rep.Skipped, "left_to_gcs", rep.LeftToGCS, "errors", len(rep.Errors),
		"bytes_deleted", rep.BytesDeleted, "bytes_moved", rep.BytesMoved, "seconds", opts.Now().Sub(start).Seconds())
	switch {
	case runErr != nil:
		return rep, runErr
	case ctx.Err() != nil:
		return rep, fmt.Errorf("enforce: interrupted: %w", ctx.Err())
	case len(rep.Errors) > 0:
		return rep, fmt.Errorf("enforce: %d failed, first: %s", len(rep.Errors), rep.Errors[0])
	}
	return rep, nil
}

// enforcer is one run.
type enforcer struct {
	c     Clients
	opts  Options
	now   time.Time
	log   *slog.Logger
	loads *loadChecker
	pool  errgroup.Group // bounded by Workers; its functions return nil

	mu  sync.Mutex // guards rep once actions run
	rep Report
}

func (e *enforcer) check(f *policy.File, prefix string) error {
	if e.c.Storage == nil {
		return errors.New("enforce: no storage client")
	}
	if f == nil {
		return errors.New("enforce: no policy")
	}
	if err := f.Validate(); err != nil {
		return fmt.Errorf("enforce: %w", err)
	}
	if prefix == "" {
		return errors.New("enforce: empty bucket prefix")
	}
	if e.c.Firestore == nil {
		for role, b := range f.Buckets {
			for i, r := range b.Rules {
				if r.RequiresLoaded {
					return fmt.Errorf("enforce: buckets.%s.rules[%d] requires lineage and there is no Firestore client", role, i)
				}
			}
		}
	}
	return nil
}

// listsVersions reports whether any rule the run may carry out can select
// noncurrent versions, so that the listing must include them.
func (e *enforcer) listsVersions(b policy.Bucket) bool {
	if e.opts.SkipNoncurrent {
		return false
	}
	for _, r := range b.Rules {
		if r.Action.Type == policy.ActionAbortIncompleteMultipartUpload || (e.opts.EnforcerOnly && r.Native()) {
			continue
		}
		c := r.Condition
		if c.State() != policy.StateLive || c.DaysSinceNoncurrentTime != nil || c.NumNewerVersions != nil {
			return true
		}
	}
	return false
}

// bucketScan evaluates one bucket's objects as the listing yields them.
type bucketScan struct {
	e      *enforcer
	bucket string
	rules  policy.Bucket
	// group holds the versions of one object name: the listing is in name
	// order, so a name's versions arrive together (possibly across pages).
	group []*storage.ObjectAttrs
	// pending are the objects a requires_loaded rule would delete, waiting
	// for their lineage to be read in one batch.
	pending []candidate
}

func (e *enforcer) scan(ctx context.Context, bucket string, b policy.Bucket) error {
	q := &storage.Query{Versions: e.listsVersions(b)}
	if err := q.SetAttrSelection(listedAttrs); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	pager := iterator.NewPager(e.c.Storage.Bucket(bucket).Objects(ctx, q), e.opts.PageSize, "")
	s := &bucketScan{e: e, bucket: bucket, rules: b}
	for {
		var page []*storage.ObjectAttrs
		next, err := pager.NextPage(&page)
		if err != nil {
			return fmt.Errorf("list: %w", err)
		}
		for _, a := range page {
			if err := s.add(ctx, a); err != nil {
				return err
			}
		}
		if next == "" {
			break
		}
	}
	s.evaluateGroup(ctx)
	return s.resolvePending(ctx)
}

// add takes the next listed version.
func (s *bucketScan) add(ctx context.Context, a *storage.ObjectAttrs) error {
	if len(s.group) > 0 && s.group[0].Name != a.Name {
		s.evaluateGroup(ctx)
		if len(s.pending) >= lineageBatch {
			if err := s.resolvePending(ctx); err != nil {
				return err
			}
		}
	}
	for _, g := range s.group {
		if g.Generation == a.Generation {
			return nil // listed twice (fake-gcs-server's page tokens repeat a name's versions)
		}
	}
	s.group = append(s.group, a)
	return nil
}

// evaluateGroup decides for every version of the current name.
func (s *bucketScan) evaluateGroup(ctx context.Context) {
	for _, a := range s.group {
		o := s.e.object(s.bucket, a)
		for _, other := range s.group {
			if other.Generation > a.Generation {
				o.NewerVersions++
			}
		}
		s.decide(ctx, o, a)
	}
	clear(s.group)
	s.group = s.group[:0]
}

// object is what evaluation needs of a, with the age of the generation first
// uploaded when the enforcer rewrote it.
func (e *enforcer) object(bucket string, a *storage.ObjectAttrs) policy.Object {
	o := policy.ObjectFrom(a)
	o.Bucket = bucket
	if t, ok := originalCreated(a); ok {
		o.Created = t
	}
	return o
}

// originalCreated reads MetaCreated; only a time before the generation's own
// creation is believed.
func originalCreated(a *storage.ObjectAttrs) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, a.Metadata[MetaCreated])
	if err != nil || !t.Before(a.Created) {
		return time.Time{}, false
	}
	return t, true
}

// sourceGeneration is the generation the lineage of a is keyed by: the one
// first uploaded, when the enforcer rewrote it.
func sourceGeneration(a *storage.ObjectAttrs) int64 {
	g, err := strconv.ParseInt(a.Metadata[MetaSourceGeneration], 10, 64)
	if err != nil || g <= 0 || g >= a.Generation {
		return a.Generation
	}
	return g
}

func (s *bucketScan) decide(ctx context.Context, o policy.Object, a *storage.ObjectAttrs) {
	e := s.e
	e.mu.Lock()
	e.rep.Scanned++
	e.mu.Unlock()
	r, ok := s.rules.Decide(o, e.now, true)
	if !ok {
		return
	}
	if r.RequiresLoaded {
		s.pending = append(s.pending, candidate{obj: o, attrs: a, rule: ruleIndex(s.rules, r)})
		return
	}
	s.plan(ctx, o, a, r)
}

// plan turns the decision r for o into an action and, unless this is a dry
// run, hands it to a worker (waiting for one to be free).
func (s *bucketScan) plan(ctx context.Context, o policy.Object, a *storage.ObjectAttrs, r policy.Rule) {
	e := s.e
	idx := ruleIndex(s.rules, r)
	act := Action{Bucket: s.bucket, Object: o.Name, Generation: o.Generation, From: o.Class, Size: o.Size,
		Rule: idx, Reason: reason(idx, r)}
	switch r.Action.Type {
	case policy.ActionDelete:
		act.Kind = KindDelete
	case policy.ActionSetStorageClass:
		act.Kind, act.To = KindSetStorageClass, r.Action.StorageClass
	default:
		return // Decide chooses no other action
	}
	if !e.record(act, r, o.Live) {
		return
	}
	j := job{act: act, attrs: a, live: o.Live}
	e.pool.Go(func() error {
		e.carryOut(ctx, j)
		return nil
	})
}

// record adds act to the report's plan and reports whether it is to be
// carried out now.
func (e *enforcer) record(act Action, r policy.Rule, live bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.opts.EnforcerOnly && r.Native() {
		e.rep.LeftToGCS++
		return false
	}
	if act.Kind == KindSetStorageClass && !live {
		e.rep.Skipped++
		e.log.Debug("noncurrent version not moved: a rewrite would make it live", "bucket", act.Bucket,
			"object", act.Object, "generation", act.Generation)
		return false
	}
	e.rep.Planned = append(e.rep.Planned, act)
	if e.opts.DryRun {
		e.count(act)
		return false
	}
	return true
}

// count adds a planned (dry run) or done action's bytes. Call with mu held.
func (e *enforcer) count(act Action) {
	switch act.Kind {
	case KindDelete:
		e.rep.BytesDeleted += act.Size
	case KindSetStorageClass:
		e.rep.BytesMoved += act.Size
	}
}

// ruleIndex is the position of r among b's rules.
func ruleIndex(b policy.Bucket, r policy.Rule) int {
	for i := range b.Rules {
		if reflect.DeepEqual(b.Rules[i], r) {
			return i
		}
	}
	return -1
}

// reason renders the deciding rule: its index, description and condition.
func reason(idx int, r policy.Rule) string {
	var conds []string
	c := r.Condition
	if c.Age != nil {
		conds = append(conds, fmt.Sprintf("age>=%dd", *c.Age))
	}
	if len(c.MatchesStorageClass) > 0 {
		conds = append(conds, fmt.Sprintf("class in %v", c.MatchesStorageClass))
	}
	if len(c.MatchesPrefix) > 0 {
		conds = append(conds, fmt.Sprintf("prefix in %q", c.MatchesPrefix))
	}
	if len(c.MatchesSuffix) > 0 {
		conds = append(conds, fmt.Sprintf("suffix in %q", c.MatchesSuffix))
	}
	if c.DaysSinceCustomTime != nil {
		conds = append(conds, fmt.Sprintf("custom_time+%dd", *c.DaysSinceCustomTime))
	}
	if c.DaysSinceNoncurrentTime != nil {
		conds = append(conds, fmt.Sprintf("noncurrent+%dd", *c.DaysSinceNoncurrentTime))
	}
	if c.NumNewerVersions != nil {
		conds = append(conds, fmt.Sprintf("newer_versions>=%d", *c.NumNewerVersions))
	}
	conds = append(conds, strings.ToLower(c.State()))
	if r.RequiresLoaded {
		conds = append(conds, "data loaded")
	}
	s := fmt.Sprintf("rule %d: %s", idx, strings.Join(conds, ", "))
	if r.Description != "" {
		s += " (" + r.Description + ")"
	}
	return s
}

// job is an action with what carrying it out needs.
type job struct {
	act   Action
	attrs *storage.ObjectAttrs
	live  bool
}

// carryOut performs one action and records its outcome.
func (e *enforcer) carryOut(ctx context.Context, j job) {
	var err error
	switch j.act.Kind {
	case KindDelete:
		err = e.delete(ctx, j)
	case KindSetStorageClass:
		err = e.rewrite(ctx, j)
	}
	log := e.log.With("kind", j.act.Kind, "bucket", j.act.Bucket, "object", j.act.Object, "generation", j.act.Generation)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch {
	case err == nil:
		e.rep.Done = append(e.rep.Done, j.act)
		e.count(j.act)
		log.Debug("done", "from", j.act.From, "to", j.act.To, "rule", j.act.Rule)
	case changedMeanwhile(err):
		e.rep.Skipped++
		log.Debug("skipped: changed since listed", "err", err)
	case ctx.Err() != nil:
		// Interrupted: Run reports that once; the action may be redone.
	default:
		e.rep.Errors = append(e.rep.Errors, err.Error())
	}
}

// delete removes exactly the listed generation; a live one only while it is
// still the live generation.
func (e *enforcer) delete(ctx context.Context, j job) error {
	a := j.act
	h := e.c.Storage.Bucket(a.Bucket).Object(a.Object).Generation(a.Generation)
	if j.live {
		h = h.If(storage.Conditions{GenerationMatch: a.Generation})
	}
	if err := h.Delete(ctx); err != nil {
		return fmt.Errorf("delete gs://%s/%s#%d: %w", a.Bucket, a.Object, a.Generation, err)
	}
	return nil
}

// rewrite copies the listed generation onto its own name in the new class,
// only while it is still the live generation, keeping its attributes and
// recording its original creation time and generation.
func (e *enforcer) rewrite(ctx context.Context, j job) error {
	a, src := j.act, j.attrs
	obj := e.c.Storage.Bucket(a.Bucket).Object(a.Object)
	cp := obj.If(storage.Conditions{GenerationMatch: a.Generation}).CopierFrom(obj.Generation(a.Generation))
	cp.StorageClass = string(a.To)
	cp.ContentType = src.ContentType
	cp.ContentEncoding = src.ContentEncoding
	cp.ContentLanguage = src.ContentLanguage
	cp.ContentDisposition = src.ContentDisposition
	cp.CacheControl = src.CacheControl
	cp.CustomTime = src.CustomTime
	cp.Metadata = originMetadata(src)
	if _, err := cp.Run(ctx); err != nil {
		return fmt.Errorf("rewrite gs://%s/%s#%d to %s: %w", a.Bucket, a.Object, a.Generation, a.To, err)
	}
	return nil
}

// originMetadata is src's metadata with MetaCreated and MetaSourceGeneration
// naming the generation first uploaded.
func originMetadata(src *storage.ObjectAttrs) map[string]string {
	md := make(map[string]string, len(src.Metadata)+2)
	for k, v := range src.Metadata {
		md[k] = v
	}
	created := src.Created
	if t, ok := originalCreated(src); ok {
		created = t
	}
	md[MetaCreated] = created.UTC().Format(time.RFC3339Nano)
	md[MetaSourceGeneration] = strconv.FormatInt(sourceGeneration(src), 10)
	return md
}

// changedMeanwhile reports whether err says the object is no longer the
// listed generation: a failed precondition or an object already gone.
func changedMeanwhile(err error) bool {
	if errors.Is(err, storage.ErrObjectNotExist) {
		return true
	}
	var gerr *googleapi.Error
	return errors.As(err, &gerr) && (gerr.Code == http.StatusPreconditionFailed || gerr.Code == http.StatusNotFound)
}
