package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	bqserver "github.com/goccy/bigquery-emulator/server"
)

// bigQuery serves the BigQuery REST API on one endpoint with one
// goccy/bigquery-emulator per project behind it, each created the first time
// a request names its project. One emulator for all projects would not do:
// it resolves a query's dataset.table across every project it holds, so two
// projects with a lab.results would read each other's tables. And on BigQuery
// every project you can name exists, while an emulator answers 404 for a
// project it was not told about.
type bigQuery struct {
	host    string
	dataDir string // one database file per project when set

	mu       sync.Mutex
	projects map[string]*bigQueryProject
	closed   bool
}

type bigQueryProject struct {
	srv *bqserver.Server
	// mu serialises requests: the emulator keeps its state in one SQLite
	// database and is not safe for concurrent writers.
	mu sync.Mutex
}

func (b *bigQuery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	project := projectOf(r.URL.Path)
	if project == "" {
		http.Error(w, `{"error":{"code":404,"message":"testenv: only /projects/{project}/... paths are emulated"}}`, http.StatusNotFound)
		return
	}
	p, err := b.project(r.Context(), project)
	if err != nil {
		http.Error(w, fmt.Sprintf(`{"error":{"code":500,"message":%q}}`, err.Error()), http.StatusInternalServerError)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.srv.Handler.ServeHTTP(w, r)
}

func (b *bigQuery) project(ctx context.Context, id string) (*bigQueryProject, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("testenv: bigquery emulator is closed")
	}
	if p := b.projects[id]; p != nil {
		return p, nil
	}
	storage := bqserver.TempStorage // a file: its SQLite driver cannot share an in-memory database between connections
	if b.dataDir != "" {
		storage = bqserver.Storage("file:" + filepath.Join(b.dataDir, "bigquery-"+id+".db") + "?cache=shared")
	}
	srv, err := bqserver.New(storage)
	if err != nil {
		return nil, fmt.Errorf("testenv: bigquery emulator for project %s: %w", id, err)
	}
	if err := srv.SetProject(id); err != nil {
		srv.Close()
		return nil, fmt.Errorf("testenv: bigquery emulator for project %s: %w", id, err)
	}
	// The emulator's handlers read the address of the emulator's own HTTP
	// server, so that server must run; it listens on a spare port nobody
	// calls, as does its gRPC server (the Storage Read API, unused).
	bound := make(chan struct{}, 1)
	srv.SetListenCallback(func(string, string) { bound <- struct{}{} })
	failed := make(chan error, 1)
	go func() {
		spare := net.JoinHostPort(b.host, "0")
		if err := srv.Serve(context.WithoutCancel(ctx), spare, spare); err != nil && !errors.Is(err, http.ErrServerClosed) {
			failed <- err
		}
	}()
	select {
	case <-bound:
	case err := <-failed:
		srv.Close()
		return nil, fmt.Errorf("testenv: bigquery emulator for project %s: %w", id, err)
	case <-ctx.Done():
		return nil, fmt.Errorf("testenv: bigquery emulator for project %s: %w", id, ctx.Err())
	}
	p := &bigQueryProject{srv: srv}
	b.projects[id] = p
	return p, nil
}

func (b *bigQuery) close(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	var errs []error
	for id, p := range b.projects {
		p.mu.Lock()
		if err := p.srv.Stop(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("testenv: stop bigquery emulator for project %s: %w", id, err))
		}
		p.mu.Unlock()
	}
	return errors.Join(errs...)
}

// projectOf returns the project of a BigQuery REST path
// (/bigquery/v2/projects/<p>/... or /projects/<p>/...).
func projectOf(path string) string {
	path = strings.TrimPrefix(path, "/bigquery/v2")
	rest, ok := strings.CutPrefix(path, "/projects/")
	if !ok {
		return ""
	}
	p, _, _ := strings.Cut(rest, "/")
	return p
}
