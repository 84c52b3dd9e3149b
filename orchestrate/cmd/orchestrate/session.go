package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"cloud.google.com/go/firestore"
	"cloud.google.com/go/storage"
	berrors "go.etcd.io/bbolt/errors"
	"google.golang.org/api/option"

	"github.com/labplatform/platform/contracts/gcp"
	"github.com/labplatform/platform/lifecycle/runner"
	"github.com/labplatform/platform/orchestrate/dag"
	"github.com/labplatform/platform/orchestrate/dags"
	"github.com/labplatform/platform/orchestrate/notify"
	"github.com/labplatform/platform/orchestrate/state"
	"github.com/labplatform/platform/orchestrate/state/boltstore"
	"github.com/labplatform/platform/orchestrate/state/firestorestore"
)

// needs says what a command uses.
type needs struct {
	// store opens the state store.
	store bool
	// clients builds the Cloud Storage, BigQuery and Firestore clients the
	// DAGs' tasks use, with credentials; without it the DAGs get clients
	// without credentials (enough to list, trigger and inspect them, not to
	// run them).
	clients bool
	// notifier is passed to the DAGs (quality alerts); nil: one that
	// discards them.
	notifier notify.Notifier
}

// session is what one command works with; Close releases it.
type session struct {
	store     state.Store
	dags      []*dag.DAG
	byID      map[string]*dag.DAG
	storage   *storage.Client
	bigquery  *bigquery.Client
	firestore *firestore.Client
	closers   []func() error
}

// open builds the DAGs and, as needed, the clients and the state store.
// With --demo the DAGs are the registry's through dags.Demo, for every
// command: the scheduler, dags list/show, trigger and backfill then agree
// on the intervals.
func (a *app) open(ctx context.Context, c *common, n needs) (_ *session, err error) {
	s := &session{byID: map[string]*dag.DAG{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	// Commands that run no task still build the three clients, without
	// credentials: the DAG builders want them, and these never connect
	// unless a task runs.
	var offline []option.ClientOption
	if !n.clients {
		offline = []option.ClientOption{option.WithoutAuthentication()}
	}
	fsOpts := offline
	if n.store && c.state == storeFirestore {
		fsOpts = nil
	}
	if s.firestore, err = gcp.NewFirestore(ctx, c.platform, fsOpts...); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.firestore.Close)
	if s.storage, err = gcp.NewStorage(ctx, c.platform, offline...); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.storage.Close)
	if s.bigquery, err = gcp.NewBigQuery(ctx, c.platform, offline...); err != nil {
		return nil, err
	}
	s.closers = append(s.closers, s.bigquery.Close)
	notifier := n.notifier
	if notifier == nil {
		notifier = notify.Log{Logger: slog.New(slog.DiscardHandler)}
	}
	lc := a.lifecycle
	if lc == nil {
		// Where the storage emulator is used no native lifecycle runs: the
		// enforcer carries out every rule there.
		r, err := runner.New(s.storage, s.firestore, alerter{notifier: notifier, now: a.now}, runner.Config{
			Prefix: c.platform.Prefix, AllRules: c.platform.Emulators.Storage != "",
		})
		if err != nil {
			return nil, fmt.Errorf("lifecycle: %w", err)
		}
		lc = r
	}
	deps := dags.Deps{
		Prefix: c.platform.Prefix, Storage: s.storage, BigQuery: s.bigquery, Firestore: s.firestore,
		Notifier: notifier, Lifecycle: lc,
	}
	list, err := a.registry(deps)
	if err != nil {
		return nil, fmt.Errorf("build the DAGs: %w", err)
	}
	if c.demo {
		if list, err = dags.Demo(list); err != nil {
			return nil, fmt.Errorf("build the demo DAGs: %w", err)
		}
	}
	for _, d := range list {
		s.byID[d.ID] = d
	}
	s.dags = slices.SortedFunc(slices.Values(list), func(x, y *dag.DAG) int { return strings.Compare(x.ID, y.ID) })
	if n.store {
		if s.store, err = a.openStore(c, s.firestore); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, s.store.Close)
	}
	return s, nil
}

// openDAG opens a session and finds the DAG named id in it.
func (a *app) openDAG(ctx context.Context, c *common, n needs, id string) (*session, *dag.DAG, error) {
	s, err := a.open(ctx, c, n)
	if err != nil {
		return nil, nil, err
	}
	d, err := s.dag(id)
	if err != nil {
		return nil, nil, errors.Join(err, s.Close())
	}
	return s, d, nil
}

// alerter sends the lifecycle module's alerts (storage growth) through the
// orchestrator's notifier.
type alerter struct {
	notifier notify.Notifier
	now      func() time.Time
}

func (a alerter) Alert(ctx context.Context, kind, message string) error {
	return a.notifier.Notify(ctx, notify.Alert{Kind: notify.Kind(kind), DAGID: dags.LifecycleID, Message: message, At: a.now()})
}

// openStore opens the state store c names.
func (a *app) openStore(c *common, fsc *firestore.Client) (state.Store, error) {
	if c.state == storeFirestore {
		return firestorestore.New(fsc, firestorestore.Options{}), nil
	}
	if dir := filepath.Dir(c.stateFile); dir != "." {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("state file directory: %w", err)
		}
	}
	st, err := boltstore.Open(c.stateFile, boltstore.Options{Timeout: a.lockTimeout})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("state file %s is in use, probably by a running `orchestrate scheduler`; stop it or use --state firestore", c.stateFile)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Close closes the store, then the clients. Every write to the store is
// committed when its method returns, so commands may ignore the error; the
// scheduler logs it.
func (s *session) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	s.closers = nil
	return errors.Join(errs...)
}

// dag returns the DAG with the given ID, or a usage error naming the known
// ones.
func (s *session) dag(id string) (*dag.DAG, error) {
	if d, ok := s.byID[id]; ok {
		return d, nil
	}
	ids := make([]string, len(s.dags))
	for i, d := range s.dags {
		ids[i] = d.ID
	}
	return nil, usageErrorf("unknown dag %q (known: %s)", id, strings.Join(ids, ", "))
}
