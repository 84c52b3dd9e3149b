package firestorestore

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/labplatform/platform/orchestrate/state"
)

func TestEscapeID(t *testing.T) {
	inputs := []string{"", "%", "%25", "a", "a/b", "a%2Fb", "_", "__x__", "_x", "%5Fx", ".", "..", "%2E", "a.b", "a_b", "a~b", "a-b", "é", "a b"}
	seen := map[string]string{}
	for _, in := range inputs {
		id := escapeID(in)
		if prev, dup := seen[id]; dup {
			t.Errorf("escapeID(%q) = escapeID(%q) = %q", in, prev, id)
		}
		seen[id] = in
		if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/~") ||
			strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__") {
			t.Errorf("escapeID(%q) = %q, not a valid Firestore document ID part", in, id)
		}
	}
	// Joined IDs stay distinct when the parts move across the separator.
	if joinID("a~b", "c") == joinID("a", "b~c") {
		t.Errorf("joinID is ambiguous")
	}
}

func TestMapCode(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		exists error
		want   error
	}{
		{name: "not found", err: status.Error(codes.NotFound, "x"), want: state.ErrNotFound},
		{name: "already exists", err: status.Error(codes.AlreadyExists, "x"), exists: state.ErrRunExists, want: state.ErrRunExists},
		{name: "aborted after retries", err: status.Error(codes.Aborted, "x"), want: state.ErrConflict},
		{name: "wrapped aborted", err: fmt.Errorf("get: %w", status.Error(codes.Aborted, "x")), want: state.ErrConflict},
		{name: "state error kept", err: fmt.Errorf("busy: %w", state.ErrPoolFull), want: state.ErrPoolFull},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mapCode(tc.err, tc.exists)
			if !errors.Is(got, tc.want) {
				t.Errorf("mapCode(%v) = %v, want it to match %v", tc.err, got, tc.want)
			}
			if status.Code(got) != status.Code(tc.err) {
				t.Errorf("mapCode(%v) lost the gRPC code: %s", tc.err, status.Code(got))
			}
		})
	}
}
