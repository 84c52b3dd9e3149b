package summary_test

import (
	"fmt"
	"testing"

	"github.com/labplatform/platform/contracts/summary"
)

func TestLedgerDocID(t *testing.T) {
	for prefix, want := range map[string]string{"": "root", "0": "shard-0", "1011": "shard-1011"} {
		if got := summary.LedgerDocID(prefix); got != want {
			t.Errorf("LedgerDocID(%q) = %q, want %q", prefix, got, want)
		}
	}
}

func TestHasPrefix(t *testing.T) {
	var h [32]byte
	h[0] = 0b1010_0000
	h[1] = 0b1000_0000
	for prefix, want := range map[string]bool{"": true, "1": true, "0": false, "1010": true, "10100000": true, "101000001": true, "101000000": false, "1011": false} {
		if got := summary.HasPrefix(h, prefix); got != want {
			t.Errorf("HasPrefix(%08b %08b, %q) = %v, want %v", h[0], h[1], prefix, got, want)
		}
	}
	long := make([]byte, 257)
	for i := range long {
		long[i] = '0'
	}
	if summary.HasPrefix([32]byte{}, string(long)) {
		t.Error("a prefix longer than the hash matched")
	}
}

// TestShardOf: every entry has exactly one shard in a prefix-free cover,
// the one whose prefix its hash starts with, and entries spread evenly.
func TestShardOf(t *testing.T) {
	if p, ok := summary.ShardOf(nil, "2345-7", "S1"); p != "" || !ok {
		t.Errorf("unsharded: ShardOf = %q, %v; want the root", p, ok)
	}
	shards := []string{"0", "10", "110", "111"}
	count := map[string]int{}
	for i := range 4000 {
		sample := fmt.Sprintf("S%05d", i)
		p, ok := summary.ShardOf(shards, "2345-7", sample)
		if !ok || !summary.HasPrefix(summary.ShardHash("2345-7", sample), p) {
			t.Fatalf("ShardOf(%s) = %q, %v", sample, p, ok)
		}
		count[p]++
	}
	for p, want := range map[string]int{"0": 2000, "10": 1000, "110": 500, "111": 500} {
		if n := count[p]; n < want*8/10 || n > want*12/10 {
			t.Errorf("shard %q holds %d of 4,000 entries, want about %d", p, n, want)
		}
	}
	// A directory with a gap places no entry whose hash falls in it.
	placed := 0
	for i := range 100 {
		if _, ok := summary.ShardOf([]string{"0"}, "2345-7", fmt.Sprint(i)); ok {
			placed++
		}
	}
	if placed < 25 || placed > 75 {
		t.Errorf("directory [0] placed %d of 100 entries, want about half", placed)
	}
}
