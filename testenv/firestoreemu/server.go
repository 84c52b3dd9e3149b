// Package firestoreemu is the platform's Firestore emulator: an in-memory
// implementation of the google.firestore.v1.Firestore gRPC service that the
// official cloud.google.com/go/firestore client talks to through
// FIRESTORE_EMULATOR_HOST, plus the official emulator's HTTP reset endpoint
// on the same port.
//
// It owns the document store (all projects and databases, keyed by full
// document name, with an hour of version history for read_time reads), the
// transaction and document-lock manager, the query engine (Firestore's
// filter semantics and cross-type value ordering) and optional persistence
// to a data file. README.md lists exactly what is and is not emulated.
//
// Errors returned over gRPC carry the status codes Firestore uses
// (InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Aborted,
// Unimplemented). Start and Close return ordinary wrapped errors.
package firestoreemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	pb "cloud.google.com/go/firestore/apiv1/firestorepb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Options configures Start. Every field is optional.
type Options struct {
	// Addr is the host:port to listen on; "" or "127.0.0.1:0" picks a free
	// port on the loopback interface.
	Addr string
	// DataFile, if set, is loaded at start when it exists and saved
	// atomically (temp file, fsync, rename) on Close and every
	// FlushInterval while data changed. Empty keeps data in memory only.
	DataFile string
	// FlushInterval is how often changed data is saved to DataFile;
	// default 5s, negative saves only on Close.
	FlushInterval time.Duration
	// Logger receives operational logs; default discards.
	Logger *slog.Logger
	// TransactionIdle is how long a transaction may stay unused before it
	// expires and releases its locks; default 60s, Firestore's idle
	// expiration (its other limit, 270 s for a whole transaction, is not
	// enforced). A client that died in a transaction holds its documents
	// that long.
	TransactionIdle time.Duration
	// Now is the clock for commit times, read times and transaction
	// expiry; default time.Now.
	Now func() time.Time
}

// Server is a running emulator.
type Server struct {
	log      *slog.Logger
	dataFile string
	store    *store
	txns     *txnManager
	addr     string // the bound host:port, kept across Suspend and Resume

	stop     chan struct{}
	wg       sync.WaitGroup // the background loop
	mu       sync.Mutex     // guards front and closed
	front    *front         // nil while suspended
	closed   bool
	saveMu   sync.Mutex
	savedGen uint64
}

// front is the network side of a Server: one listener, routed to a gRPC and
// an HTTP server. Suspend closes it; Resume builds a new one on the same
// address.
type front struct {
	log     *slog.Logger
	ln      net.Listener
	grpcSrv *grpc.Server
	httpSrv *http.Server
	grpcL   *chanListener
	httpL   *chanListener
	done    chan struct{}
	wg      sync.WaitGroup
}

// Start loads DataFile (if any), listens on opts.Addr and serves gRPC and
// HTTP on that one port. ctx bounds only the startup.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TransactionIdle <= 0 {
		opts.TransactionIdle = 60 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.FlushInterval == 0 {
		opts.FlushInterval = 5 * time.Second
	}
	s := &Server{
		log:      opts.Logger,
		dataFile: opts.DataFile,
		store:    newStore(opts.Now),
		txns:     newTxnManager(opts.Now, opts.TransactionIdle),
		stop:     make(chan struct{}),
	}
	if s.dataFile != "" {
		if err := s.loadFile(); err != nil {
			return nil, err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("firestoreemu: listen on %s: %w", opts.Addr, err)
	}
	s.addr = ln.Addr().String()
	s.front = s.serve(ln)
	s.wg.Go(func() { s.background(opts.FlushInterval) })
	s.log.Info("firestore emulator listening", "addr", s.Addr(), "data_file", s.dataFile)
	return s, nil
}

// serve starts serving gRPC and HTTP on ln.
func (s *Server) serve(ln net.Listener) *front {
	f := &front{
		log:   s.log,
		ln:    ln,
		grpcL: newChanListener(ln.Addr()),
		httpL: newChanListener(ln.Addr()),
		done:  make(chan struct{}),
		grpcSrv: grpc.NewServer(
			grpc.MaxRecvMsgSize(256<<20),
			grpc.MaxSendMsgSize(256<<20),
			// Stop returns only once every handler has: after Suspend
			// no RPC can still begin a transaction or write.
			grpc.WaitForHandlers(true),
		),
	}
	pb.RegisterFirestoreServer(f.grpcSrv, &service{store: s.store, txns: s.txns})
	f.httpSrv = &http.Server{Handler: s.httpHandler(), ReadHeaderTimeout: 10 * time.Second}
	f.wg.Go(func() { _ = f.grpcSrv.Serve(f.grpcL) })
	f.wg.Go(func() { _ = f.httpSrv.Serve(f.httpL) })
	f.wg.Go(f.acceptLoop)
	return f
}

// close stops accepting and ends every connection: gracefully (in-flight
// RPCs may finish, for up to 2 s) or at once.
func (f *front) close(graceful bool) error {
	close(f.done)
	lnErr := f.ln.Close()
	f.grpcL.close()
	f.httpL.close()
	if graceful {
		stopped := make(chan struct{})
		go func() { f.grpcSrv.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			f.grpcSrv.Stop() // RPCs still waiting on locks
			<-stopped
		}
	} else {
		f.grpcSrv.Stop()
	}
	_ = f.httpSrv.Close()
	f.wg.Wait()
	if lnErr != nil && !errors.Is(lnErr, net.ErrClosed) {
		return fmt.Errorf("firestoreemu: close listener: %w", lnErr)
	}
	return nil
}

// Addr returns the bound host:port, the value for FIRESTORE_EMULATOR_HOST.
// It stays the same across Suspend and Resume.
func (s *Server) Addr() string { return s.addr }

// errClosed is returned by Suspend and Resume after Close.
var errClosed = errors.New("firestoreemu: server closed")

// Suspend takes the emulator off the network as an outage would: the port
// refuses new connections, open connections are closed (in-flight RPCs fail
// with UNAVAILABLE on the client) and open transactions are aborted, their
// locks released, as they would be by an emulator that restarted. Documents
// stay in memory and the data file keeps being saved. It returns once no
// RPC runs any more. Resume serves again; Suspend while suspended does
// nothing.
func (s *Server) Suspend() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.front == nil {
		return nil
	}
	err := s.front.close(false)
	s.front = nil
	s.txns.abortAll()
	s.log.Info("firestore emulator suspended", "addr", s.addr)
	return err
}

// Resume listens again on Addr, with every document kept. It fails if the
// port was taken meanwhile (the error wraps syscall.EADDRINUSE; the caller
// may retry). Resume while serving does nothing.
func (s *Server) Resume(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.front != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		return fmt.Errorf("firestoreemu: listen again on %s: %w", s.addr, err)
	}
	s.front = s.serve(ln)
	s.log.Info("firestore emulator resumed", "addr", s.addr)
	return nil
}

// Reset drops all documents of every project and aborts all transactions
// (the same as the HTTP DELETE endpoint, for all databases).
func (s *Server) Reset() {
	s.txns.abortAll()
	s.store.reset("")
}

// Close stops serving and, when DataFile is set, saves the data.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	f := s.front
	s.front = nil
	s.mu.Unlock()

	close(s.stop)
	var lnErr error
	if f != nil {
		lnErr = f.close(true)
	}
	s.wg.Wait()
	var saveErr error
	if s.dataFile != "" {
		saveErr = s.saveFile()
	}
	return errors.Join(lnErr, saveErr)
}

// background expires idle transactions and flushes the data file.
func (s *Server) background(flush time.Duration) {
	expiry := time.NewTicker(time.Second)
	defer expiry.Stop()
	var flushC <-chan time.Time
	if s.dataFile != "" && flush > 0 {
		t := time.NewTicker(flush)
		defer t.Stop()
		flushC = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-expiry.C:
			s.txns.expireIdle()
			s.store.sweep()
		case <-flushC:
			if err := s.saveFile(); err != nil {
				s.log.Error("firestore emulator: periodic save", "err", err)
			}
		}
	}
}

// acceptLoop routes each accepted connection by its first bytes: the
// HTTP/2 client preface ("PRI * HTTP/2.0") goes to gRPC, anything else to
// the HTTP/1 server. Routing happens once per connection.
func (f *front) acceptLoop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			f.log.Warn("firestore emulator: accept", "err", err)
			select {
			case <-f.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		go f.route(c)
	}
}

func (f *front) route(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	head := make([]byte, 3)
	if _, err := io.ReadFull(c, head); err != nil {
		_ = c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	pc := &prefixConn{Conn: c, prefix: head}
	if bytes.Equal(head, []byte("PRI")) {
		f.grpcL.deliver(pc)
		return
	}
	f.httpL.deliver(pc)
}

func (s *Server) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /emulator/v1/projects/{project}/databases/{database}/documents", func(w http.ResponseWriter, r *http.Request) {
		root := "projects/" + r.PathValue("project") + "/databases/" + r.PathValue("database")
		if _, err := parseDatabase(root); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.store.reset(root + "/documents/")
		s.log.Info("firestore emulator: reset", "database", root)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}\n")
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "Ok\n")
	})
	return mux
}

// loadFile reads DataFile if it exists.
func (s *Server) loadFile() error {
	b, err := os.ReadFile(s.dataFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("firestoreemu: read data file: %w", err)
	}
	var snap pb.ListDocumentsResponse
	if err := proto.Unmarshal(b, &snap); err != nil {
		return fmt.Errorf("firestoreemu: decode data file %s: %w", s.dataFile, err)
	}
	if err := s.store.load(snap.GetDocuments()); err != nil {
		return fmt.Errorf("firestoreemu: data file %s: %w", s.dataFile, err)
	}
	_, s.savedGen = s.store.snapshot()
	s.log.Info("firestore emulator: loaded data file", "path", s.dataFile, "documents", len(snap.GetDocuments()))
	return nil
}

// saveFile writes the latest documents to DataFile atomically when they
// changed since the last save.
func (s *Server) saveFile() error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	docs, gen := s.store.snapshot()
	if gen == s.savedGen {
		return nil
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&pb.ListDocumentsResponse{Documents: docs})
	if err != nil {
		return fmt.Errorf("firestoreemu: encode data: %w", err)
	}
	dir := filepath.Dir(s.dataFile)
	f, err := os.CreateTemp(dir, filepath.Base(s.dataFile)+".tmp*")
	if err != nil {
		return fmt.Errorf("firestoreemu: save data file: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, s.dataFile)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("firestoreemu: save data file %s: %w", s.dataFile, werr)
	}
	// The rename is durable only once the directory entry is on disk.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("firestoreemu: save data file %s: sync directory: %w", s.dataFile, err)
	}
	s.savedGen = gen
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	serr := d.Sync()
	if cerr := d.Close(); serr == nil {
		serr = cerr
	}
	return serr
}

// prefixConn replays bytes already read for routing.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// chanListener is a net.Listener fed with routed connections.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		_ = c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) close() { l.once.Do(func() { close(l.done) }) }

func (l *chanListener) Close() error { l.close(); return nil }

func (l *chanListener) Addr() net.Addr { return l.addr }
