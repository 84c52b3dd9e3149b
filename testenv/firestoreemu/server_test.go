package firestoreemu_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"cloud.google.com/go/firestore"
	"google.golang.org/grpc/codes"

	"github.com/labplatform/platform/testenv/firestoreemu"
)

func TestHTTPResetEndpointClearsOneProject(t *testing.T) {
	ctx := context.Background()
	c := newClient(t)
	other, err := firestore.NewClient(ctx, projectFor(t)+"-other")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	must(c.Doc("c/d").Set(ctx, map[string]any{"v": 1}))(t)
	must(other.Doc("c/d").Set(ctx, map[string]any{"v": 1}))(t)

	url := "http://" + emulatorHost + "/emulator/v1/projects/" + projectFor(t) + "/databases/(default)/documents"
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("DELETE %s: %s", url, res.Status)
	}
	_, err = c.Doc("c/d").Get(ctx)
	wantCode(t, err, codes.NotFound)
	if _, err := other.Doc("c/d").Get(ctx); err != nil {
		t.Fatalf("other project's document was reset: %v", err)
	}
	// gRPC still works on the same port after HTTP traffic.
	must(c.Doc("c/d").Set(ctx, map[string]any{"v": 2}))(t)
}

func TestServerReset(t *testing.T) {
	ctx := context.Background()
	srv, c := startPrivate(t, firestoreemu.Options{})
	must(c.Doc("c/d").Set(ctx, map[string]any{"v": 1}))(t)
	srv.Reset()
	_, err := c.Doc("c/d").Get(ctx)
	wantCode(t, err, codes.NotFound)
}

func TestDataFileSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "firestore.pb")
	srv, c := startPrivate(t, firestoreemu.Options{DataFile: path, FlushInterval: -1})
	wr := must(c.Doc("c/d").Set(ctx, map[string]any{"v": 1, "m": map[string]any{"`odd`": "x"}}))(t)
	must(c.Doc("c/d/sub/e").Set(ctx, map[string]any{"v": 2}))(t)
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("data file not written: %v", err)
	}

	_, c2 := startPrivate(t, firestoreemu.Options{DataFile: path})
	snap := must(c2.Doc("c/d").Get(ctx))(t)
	if snap.Data()["v"] != int64(1) || !snap.UpdateTime.Equal(wr.UpdateTime) {
		t.Fatalf("after restart: %v updated %v, want v=1 updated %v", snap.Data(), snap.UpdateTime, wr.UpdateTime)
	}
	if _, err := c2.Doc("c/d/sub/e").Get(ctx); err != nil {
		t.Fatalf("subcollection document lost: %v", err)
	}
	// Commits after a restart get later timestamps than restored data.
	wr2 := must(c2.Doc("c/d").Set(ctx, map[string]any{"v": 3}))(t)
	if !wr2.UpdateTime.After(wr.UpdateTime) {
		t.Fatalf("commit time %v not after restored %v", wr2.UpdateTime, wr.UpdateTime)
	}
}

func TestStartFailsOnCorruptDataFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.pb")
	if err := os.WriteFile(path, []byte("not a protobuf \xff\xff\xff"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err := firestoreemu.Start(context.Background(), firestoreemu.Options{DataFile: path})
	if err == nil {
		srv.Close()
		t.Fatal("Start accepted a corrupt data file")
	}
}
