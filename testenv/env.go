package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/grpc"

	"github.com/labplatform/platform/contracts/config"
	"github.com/labplatform/platform/testenv/firestoreemu"
)

// Options configure Start. The zero value starts every emulator on a free
// loopback port, in memory.
type Options struct {
	// Project is the project of the default platform; default "lab-local".
	Project string
	// Prefix is the bucket prefix of the default platform; default "lab".
	Prefix string
	// Host is the address the emulators listen on; default 127.0.0.1.
	Host string
	// Ports of the emulators; 0 picks a free port.
	StoragePort, PubSubPort, BigQueryPort, FirestorePort int
	// DataDir, when set, keeps Cloud Storage objects, BigQuery tables and
	// Firestore documents across restarts of the Env in this directory.
	// Pub/Sub is always in memory. (Env.Stop and Env.Restart keep every
	// emulator's data either way.)
	DataDir string
	// PubSubRetryBackoff makes the Pub/Sub emulator honour each
	// subscription's retry policy, as GCP does: a nacked message of a
	// subscription with a RetryPolicy comes back after the backoff of its
	// delivery attempt, min(maximum, minimum·2^(attempt−1)), instead of at
	// once; a deadline change that follows the nack of the same delivery
	// (the Go client's receipt, sent concurrently) is dropped. Off, pstest
	// redelivers every nacked message at once. It applies to clients of
	// the public address (Platform.Emulators.PubSub). See README.md.
	PubSubRetryBackoff bool
	// StartTimeout bounds Start; default 2 minutes.
	StartTimeout time.Duration
	// Logger receives the emulators' logs; default discards them.
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Project == "" {
		o.Project = "lab-local"
	}
	if o.Prefix == "" {
		o.Prefix = "lab"
	}
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Env is a running local GCP.
type Env struct {
	// Platform is the default platform's configuration, emulator endpoints
	// included.
	Platform config.Platform

	log        *slog.Logger
	versioning bool
	// pubsub holds the Pub/Sub state. Its own listener (pubsubInternal) is
	// never stopped: the storage emulator's notifications and the
	// notification router's subscription use it. Clients use pubsubFront,
	// which serves the same state and can go down (Stop).
	pubsub         *pstest.Server
	pubsubInternal string
	pubsubFront    *listenerFront
	gcs            *fakestorage.Server
	gcsFront       *listenerFront
	bq             *bigQuery
	bqFront        *listenerFront
	firestore      *firestoreemu.Server
	router         *router
	restore        []func()
	closeMu        sync.Mutex // guards closed; held by Close, Stop and Restart
	closed         bool
	serveErr       chan error
}

// active guards the process environment: the emulator variables Start
// exports can describe only one Env at a time.
var active sync.Mutex

// gcsEventsTopic receives every object event of the Cloud Storage emulator;
// the notification router fans them out to the topics of the buckets'
// notification configurations, as GCS does.
const gcsEventsTopic = "gcs-events"

// Start starts the emulators and provisions the default platform. Call Close
// to stop them. Only one Env may run in a process at a time.
func Start(ctx context.Context, opts Options) (*Env, error) {
	opts.defaults()
	if !active.TryLock() {
		return nil, errors.New("testenv: another Env is running in this process; close it first")
	}
	e := &Env{log: opts.Logger, versioning: opts.DataDir == "", serveErr: make(chan error, 2)}
	// Emulators answer at once or not at all: bound the start so a fault
	// surfaces as an error, not as client retries that never end.
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	ok := false
	defer func() {
		if !ok {
			e.shutdown()
			active.Unlock()
		}
	}()

	// Pub/Sub first: the Cloud Storage emulator's notifier dials it.
	if err := e.startPubSub(opts); err != nil {
		return nil, err
	}
	e.Platform = config.Platform{
		Project:          opts.Project,
		Prefix:           opts.Prefix,
		BigQueryLocation: config.DefaultBigQueryLocation,
		Emulators:        config.Emulators{PubSub: e.pubsubFront.addr},
	}

	gcsLis, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(opts.StoragePort)))
	if err != nil {
		return nil, fmt.Errorf("testenv: storage emulator listen: %w", err)
	}
	e.Platform.Emulators.Storage = "http://" + gcsLis.Addr().String()
	bqLis, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(opts.BigQueryPort)))
	if err != nil {
		gcsLis.Close()
		return nil, fmt.Errorf("testenv: bigquery emulator listen: %w", err)
	}
	e.Platform.Emulators.BigQuery = bqLis.Addr().String()
	// The storage emulator's notifier reads PUBSUB_EMULATOR_HOST when it is
	// built, and the BigQuery emulator's load jobs read
	// STORAGE_EMULATOR_HOST. The notifier gets the internal Pub/Sub
	// address, which no outage takes down (see router); everything after it
	// the public one.
	e.restore = append(e.restore, setEnv(map[string]string{
		config.EnvStorageEmulator:  e.Platform.Emulators.Storage,
		config.EnvPubSubEmulator:   e.pubsubInternal,
		config.EnvBigQueryEmulator: e.Platform.Emulators.BigQuery,
	}))

	if err := e.createTopic(ctx, e.Platform.Project, gcsEventsTopic); err != nil {
		gcsLis.Close()
		bqLis.Close()
		return nil, err
	}
	if err := e.startStorage(gcsLis, opts); err != nil {
		bqLis.Close()
		return nil, err
	}
	os.Setenv(config.EnvPubSubEmulator, e.Platform.Emulators.PubSub)
	if err := e.startBigQuery(bqLis, opts); err != nil {
		return nil, err
	}
	if err := e.startFirestore(ctx, opts); err != nil {
		return nil, err
	}
	if e.router, err = startRouter(ctx, e.Platform, e.pubsubInternal, gcsEventsTopic, e.log); err != nil {
		return nil, err
	}
	if err := e.Provision(ctx, e.Platform); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// startPubSub starts pstest on a free port of its own, which stays up for
// the Env's life, and serves the same state on the configured port through
// a front that Stop can take down. The front honours the flow control of
// each StreamingPull (flowControl), and with opts.PubSubRetryBackoff it
// also delays nacks by the subscription's retry policy (nackBackoff).
func (e *Env) startPubSub(opts Options) error {
	lis, err := net.Listen("tcp", net.JoinHostPort(opts.Host, strconv.Itoa(opts.PubSubPort)))
	if err != nil {
		return fmt.Errorf("testenv: pubsub emulator listen: %w", err)
	}
	// pstest panics when it cannot listen; a free loopback port can hardly
	// fail.
	e.pubsub = pstest.NewServerWithAddress(net.JoinHostPort(opts.Host, "0"))
	e.pubsubInternal = e.pubsub.Addr
	state := &e.pubsub.GServer
	// pstest's own server has no options; WaitForHandlers makes Stop return
	// only once no RPC runs any more.
	srvOpts := []grpc.ServerOption{grpc.WaitForHandlers(true)}
	srvOpts = append(srvOpts, newFlowControl(e.pubsub).serverOptions()...)
	if opts.PubSubRetryBackoff {
		srvOpts = append(srvOpts, newNackBackoff(e.pubsub, e.log.With("emulator", "pubsub")).serverOptions()...)
	}
	e.pubsubFront = newListenerFront(lis, func(lis net.Listener) server {
		srv := grpc.NewServer(srvOpts...)
		pubsubpb.RegisterPublisherServer(srv, state)
		pubsubpb.RegisterSubscriberServer(srv, state)
		pubsubpb.RegisterSchemaServiceServer(srv, state)
		go func() {
			if err := srv.Serve(lis); err != nil {
				e.serveFailed(PubSub, err)
			}
		}()
		return grpcServer{srv}
	})
	return nil
}

func (e *Env) startStorage(lis net.Listener, opts Options) error {
	root := ""
	if opts.DataDir != "" {
		root = filepath.Join(opts.DataDir, "gcs")
		if err := os.MkdirAll(root, 0o755); err != nil {
			lis.Close()
			return fmt.Errorf("testenv: storage data dir: %w", err)
		}
	}
	gcs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener:  true,
		Scheme:      "http",
		ExternalURL: e.Platform.Emulators.Storage,
		StorageRoot: root,
		Writer:      &logWriter{log: e.log.With("emulator", "storage")},
		EventOptions: fakestorage.EventManagerOptions{
			ProjectID: e.Platform.Project,
			TopicName: gcsEventsTopic,
			NotifyOn:  fakestorage.EventNotificationOptions{Finalize: true, Delete: true, MetadataUpdate: true, Archive: true},
		},
	})
	if err != nil {
		lis.Close()
		return fmt.Errorf("testenv: storage emulator: %w", err)
	}
	e.gcs = gcs
	e.gcsFront = newListenerFront(lis, e.httpServe(Storage, gcs.HTTPHandler()))
	return nil
}

func (e *Env) startBigQuery(lis net.Listener, opts Options) error {
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			lis.Close()
			return fmt.Errorf("testenv: bigquery data dir: %w", err)
		}
	}
	e.bq = &bigQuery{host: opts.Host, dataDir: opts.DataDir, projects: map[string]*bigQueryProject{}}
	e.bqFront = newListenerFront(lis, e.httpServe(BigQuery, e.bq))
	return nil
}

func (e *Env) startFirestore(ctx context.Context, opts Options) error {
	fo := firestoreemu.Options{
		Addr:   net.JoinHostPort(opts.Host, strconv.Itoa(opts.FirestorePort)),
		Logger: e.log.With("emulator", "firestore"),
	}
	if opts.DataDir != "" {
		fo.DataFile = filepath.Join(opts.DataDir, "firestore.pb")
	}
	fs, err := firestoreemu.Start(ctx, fo)
	if err != nil {
		return fmt.Errorf("testenv: firestore emulator: %w", err)
	}
	e.firestore = fs
	e.Platform.Emulators.Firestore = fs.Addr()
	e.restore = append(e.restore, setEnv(map[string]string{config.EnvFirestoreEmu: fs.Addr()}))
	return nil
}

// httpServe returns a function that serves h on a listener.
func (e *Env) httpServe(s Service, h http.Handler) func(net.Listener) server {
	return func(lis net.Listener) server {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				e.serveFailed(s, err)
			}
		}()
		return srv
	}
}

// serveFailed records that an emulator stopped serving on its own; Close
// returns the first such error.
func (e *Env) serveFailed(s Service, err error) {
	e.log.Error("emulator stopped serving", "emulator", string(s), "err", err)
	select {
	case e.serveErr <- fmt.Errorf("testenv: %s emulator: %w", s, err):
	default:
	}
}

// Environ returns the environment variables that point clients in other
// processes (or a shell) at these emulators.
func (e *Env) Environ() []string { return e.Platform.Environ() }

// Close stops every emulator, drops in-memory data and restores the process
// environment.
func (e *Env) Close() error {
	e.closeMu.Lock()
	defer e.closeMu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	err := e.shutdown()
	active.Unlock()
	return err
}

func (e *Env) shutdown() error {
	var errs []error
	if e.router != nil {
		errs = append(errs, e.router.close())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if e.gcsFront != nil {
		errs = append(errs, e.gcsFront.close(ctx))
	}
	if e.gcs != nil {
		e.gcs.Stop()
	}
	if e.bqFront != nil {
		errs = append(errs, e.bqFront.close(ctx))
	}
	if e.bq != nil {
		errs = append(errs, e.bq.close(ctx))
	}
	if e.firestore != nil {
		errs = append(errs, e.firestore.Close())
	}
	if e.pubsubFront != nil {
		errs = append(errs, e.pubsubFront.close(ctx))
	}
	if e.pubsub != nil {
		errs = append(errs, e.pubsub.Close())
	}
	for i := len(e.restore) - 1; i >= 0; i-- {
		e.restore[i]()
	}
	select {
	case err := <-e.serveErr:
		errs = append(errs, err)
	default:
	}
	return errors.Join(errs...)
}

// setEnv sets the variables and returns a function that puts back what was
// there before.
func setEnv(vars map[string]string) func() {
	type old struct {
		value string
		set   bool
	}
	prev := make(map[string]old, len(vars))
	for k, v := range vars {
		o, set := os.LookupEnv(k)
		prev[k] = old{value: o, set: set}
		os.Setenv(k, v)
	}
	return func() {
		for k, o := range prev {
			if o.set {
				os.Setenv(k, o.value)
			} else {
				os.Unsetenv(k)
			}
		}
	}
}

// logWriter turns the storage emulator's log lines into slog records: its
// access log at debug level, and its notifier's failures ("error publishing
// event: ...": a notification that was lost) as errors.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := string(trimNewline(p))
	if strings.HasPrefix(line, "error") {
		w.log.Error("storage emulator", "msg", line)
	} else {
		w.log.Debug(line)
	}
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n' || p[len(p)-1] == '\r') {
		p = p[:len(p)-1]
	}
	return p
}

var _ io.Writer = (*logWriter)(nil)
