package firestoreemu_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/firestore"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/testenv/firestoreemu"
)

// emulatorHost is the address of the suite's shared emulator.
var emulatorHost string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	srv, err := firestoreemu.Start(context.Background(), firestoreemu.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start emulator:", err)
		return 1
	}
	defer srv.Close()
	emulatorHost = srv.Addr()
	if err := os.Setenv("FIRESTORE_EMULATOR_HOST", emulatorHost); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

var (
	projects   sync.Map // testing.TB -> project ID
	projectSeq atomic.Int64
)

// projectFor gives every test (and every run of it, with -count) its own
// project, so tests are isolated; repeated calls in one test agree.
func projectFor(t testing.TB) string {
	if p, ok := projects.Load(t); ok {
		return p.(string)
	}
	p, _ := projects.LoadOrStore(t, fmt.Sprintf("%s-%d", projectName(t), projectSeq.Add(1)))
	return p.(string)
}

func projectName(t testing.TB) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(t.Name()))
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, t.Name())
	if len(name) > 40 {
		name = name[:40]
	}
	return fmt.Sprintf("p-%s-%08x", name, h.Sum32())
}

// newClient returns an official client for the shared emulator, in a
// project of the test's own.
func newClient(t testing.TB) *firestore.Client {
	t.Helper()
	c, err := firestore.NewClient(context.Background(), projectFor(t))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// startPrivate starts an emulator of the test's own (for clock, data file
// and reset tests) and returns it with a client connected to it.
func startPrivate(t *testing.T, opts firestoreemu.Options) (*firestoreemu.Server, *firestore.Client) {
	t.Helper()
	srv, err := firestoreemu.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv, clientFor(t, srv.Addr())
}

func clientFor(t *testing.T, addr string) *firestore.Client {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c, err := firestore.NewClient(context.Background(), projectFor(t), option.WithGRPCConn(conn))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fakeClock is an injectable clock that tests advance explicitly.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (err %v), want %v", got, err, want)
	}
}

// must checks a (value, error) result: must(f())(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
