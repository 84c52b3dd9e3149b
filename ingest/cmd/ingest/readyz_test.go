package main

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/labplatform/platform/testenv"
)

// TestRunReadyzFollowsAStorageOutage runs "ingest run" and takes the Cloud
// Storage emulator off the network: /readyz turns 503 naming storage within
// seconds, ingest keeps running, and /readyz is 200 again soon after the
// emulator is back. It stops an emulator every test of this binary shares,
// so it must never run in parallel.
func TestRunReadyzFollowsAStorageOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	p := env.NewTestPlatform(t)
	dir := t.TempDir()
	root := filepath.Join(dir, "exports")
	if err := os.MkdirAll(filepath.Join(root, "R001"), 0o755); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	getenv := getenvOf(p, "INGEST_ROOT="+root, "INGEST_CHECKPOINT="+filepath.Join(dir, "ckpt.db"))

	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var stderr lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(rctx, []string{"run", "-listen", addr, "-interval", "200ms", "-convention", "rename"}, getenv, io.Discard, &stderr)
	}()
	r := testenv.Readyz{T: t, URL: "http://" + addr + "/readyz", Done: done}

	r.Wait(ctx, "")
	if err := env.Stop(ctx, testenv.Storage); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := env.Restart(context.WithoutCancel(ctx), testenv.Storage); err != nil {
			t.Error(err)
		}
	}()
	took := r.Wait(ctx, "storage")
	t.Logf("storage down: /readyz 503 after %v", took.Round(time.Millisecond))
	if err := env.Restart(ctx, testenv.Storage); err != nil {
		t.Fatal(err)
	}
	took = r.Wait(ctx, "")
	t.Logf("storage back: /readyz 200 after %v", took.Round(time.Millisecond))
	stop()
	if err := <-done; err != nil {
		t.Errorf("ingest run: %v\n%s", err, stderr.String())
	}
}
