// Package rawcheck reads back what ingest shipped to the raw bucket, for
// tests: the objects, their bodies, and the lines of database chunks with
// every chunk's integrity checked (the header, whole lines, and contiguous
// byte ranges within each series).
package rawcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"

	"github.com/labplatform/platform/contracts/names"
)

// Objects lists the bucket by object name.
func Objects(t testing.TB, ctx context.Context, b *storage.BucketHandle) map[string]*storage.ObjectAttrs {
	t.Helper()
	out := map[string]*storage.ObjectAttrs{}
	it := b.Objects(ctx, nil)
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out
		}
		if err != nil {
			t.Fatalf("list objects: %v", err)
		}
		out[a.Name] = a
	}
}

// Read returns an object's body.
func Read(t testing.TB, ctx context.Context, b *storage.BucketHandle, name string) []byte {
	t.Helper()
	rd, err := b.Object(name).NewReader(ctx)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return data
}

// ChunkLines checks the database chunk objects among objs and returns the
// lines they carry, in series and offset order. Each chunk body must be the
// header followed by whole lines, as many bytes as its name's range, and
// each series' ranges must follow one another with no gap or overlap.
func ChunkLines(t testing.TB, ctx context.Context, b *storage.BucketHandle, objs map[string]*storage.ObjectAttrs, header string) []string {
	t.Helper()
	type chunk struct {
		c    names.ChunkObject
		body []byte
	}
	series := map[string][]chunk{}
	for name := range objs {
		if !names.IsChunkObject(name) {
			continue
		}
		c, err := names.ParseChunkObject(name)
		if err != nil {
			t.Fatalf("chunk name: %v", err)
		}
		series[c.Series] = append(series[c.Series], chunk{c: c, body: Read(t, ctx, b, name)})
	}
	var keys []string
	for k := range series {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return seriesGen(keys[i]) < seriesGen(keys[j]) })
	var lines []string
	for _, k := range keys {
		cs := series[k]
		sort.Slice(cs, func(i, j int) bool { return cs[i].c.Start < cs[j].c.Start })
		want := int64(len(header))
		for _, c := range cs {
			if c.c.Start != want {
				t.Errorf("series %s: chunk %d-%d, want start %d (gap or overlap)", k, c.c.Start, c.c.End, want)
			}
			want = c.c.End
			rest, ok := bytes.CutPrefix(c.body, []byte(header))
			if !ok {
				t.Errorf("chunk %s-%d: body does not start with the header", k, c.c.Start)
			}
			if int64(len(rest)) != c.c.End-c.c.Start {
				t.Errorf("chunk %s-%d: %d body bytes, name says %d", k, c.c.Start, len(rest), c.c.End-c.c.Start)
			}
			if !bytes.HasSuffix(rest, []byte("\n")) {
				t.Errorf("chunk %s-%d: ends inside a line", k, c.c.Start)
			}
			for _, l := range strings.SplitAfter(string(rest), "\n") {
				if l != "" {
					lines = append(lines, strings.TrimSuffix(l, "\n"))
				}
			}
		}
	}
	return lines
}

// seriesGen reads the generation of a series name ("g<n>-<inode>").
func seriesGen(s string) int {
	var g int
	fmt.Sscanf(s, "g%d-", &g)
	return g
}
