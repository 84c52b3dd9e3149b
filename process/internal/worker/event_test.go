package worker

import (
	"testing"

	"github.com/labplatform/platform/contracts/names"
)

func TestParseEvent(t *testing.T) {
	attrs := map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "lab-raw", "objectId": "robot=R001/date=2026-03-01/a.csv"}
	tests := []struct {
		name      string
		attrs     map[string]string
		data      string
		gen       int64
		rewritten bool
		bad       bool
	}{
		{name: "generation from attributes", attrs: with(attrs, "objectGeneration", "17"), gen: 17},
		{name: "generation from the payload", attrs: attrs, data: `{"generation":"23"}`, gen: 23},
		{name: "a lifecycle rewrite", attrs: with(attrs, "objectGeneration", "31"),
			data: `{"generation":"31","metadata":{"` + names.MetaLifecycleSourceGeneration + `":"17","` + names.MetaLifecycleCreated + `":"2026-03-01T00:00:00Z"}}`,
			gen:  31, rewritten: true},
		{name: "other metadata is new data", attrs: with(attrs, "objectGeneration", "5"), data: `{"metadata":{"owner":"robot"}}`, gen: 5},
		{name: "no generation", attrs: attrs, bad: true},
		{name: "bad payload", attrs: attrs, data: `{`, bad: true},
		{name: "no object", attrs: map[string]string{"eventType": "OBJECT_FINALIZE", "bucketId": "b"}, bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := ParseEvent(tt.attrs, []byte(tt.data))
			if tt.bad {
				if err == nil {
					t.Fatalf("ParseEvent accepted %+v", ev)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Generation != tt.gen || ev.Rewritten != tt.rewritten {
				t.Errorf("event %+v, want generation %d rewritten %v", ev, tt.gen, tt.rewritten)
			}
		})
	}
}

func with(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for key, val := range m {
		out[key] = val
	}
	return out
}
