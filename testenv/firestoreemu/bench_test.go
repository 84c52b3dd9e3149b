package firestoreemu_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/firestore"
)

// Benchmarks drive the emulator through the official client over loopback;
// client and server share the machine's cores.

func BenchmarkGetDocument(b *testing.B) {
	ctx := context.Background()
	c := newClient(b)
	doc := c.Doc("bench/read")
	must(doc.Set(ctx, map[string]any{"n": 1, "s": "some text", "m": map[string]any{"a": 1.5}}))(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := doc.Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "reads/s")
}

func BenchmarkGetDocumentParallel(b *testing.B) {
	ctx := context.Background()
	c := newClient(b)
	for i := range 100 {
		must(c.Doc(fmt.Sprintf("bench/r%d", i)).Set(ctx, map[string]any{"n": i}))(b)
	}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) % 100
			if _, err := c.Doc(fmt.Sprintf("bench/r%d", i)).Get(ctx); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "reads/s")
}

func BenchmarkCommitSingle(b *testing.B) {
	ctx := context.Background()
	c := newClient(b)
	doc := c.Doc("bench/write")
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		if _, err := doc.Set(ctx, map[string]any{"n": i}); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "commits/s")
}

func BenchmarkCommitSingleParallel(b *testing.B) {
	ctx := context.Background()
	c := newClient(b)
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := c.Doc(fmt.Sprintf("bench/w%d", i%1000)).Set(ctx, map[string]any{"n": i}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, "commits/s")
}

func BenchmarkCommit500Writes(b *testing.B) {
	ctx := context.Background()
	c := newClient(b)
	round := 0
	b.ResetTimer()
	for b.Loop() {
		round++
		err := c.RunTransaction(ctx, func(ctx context.Context, tx *firestore.Transaction) error {
			for i := range 500 {
				if err := tx.Set(c.Doc(fmt.Sprintf("bench500/d%03d", i)), map[string]any{"round": round, "i": i}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func reportRate(b *testing.B, unit string) {
	if e := b.Elapsed(); e > 0 {
		b.ReportMetric(float64(b.N)/e.Seconds(), unit)
	}
}
