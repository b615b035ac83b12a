package ingest

import (
	"cmp"
	"math/rand/v2"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// TestCollapse checks collapse against the rule it implements, on random
// batches with many repeats and equal event times: one event per (app,
// token), the one with the latest event time and, among those, the last in
// stream order; sorted by (app, token).
func TestCollapse(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		n := rng.IntN(300)
		events := make([]devices.Event, n)
		for i := range events {
			events[i] = devices.Event{Op: pipeline.OpPut, App: []string{"a", "b", "ab"}[rng.IntN(3)],
				Token: string(rune('k' + rng.IntN(20))), User: int64(i), At: int64(rng.IntN(5))}
		}
		type key struct{ app, token string }
		want := map[key]devices.Event{}
		for _, e := range events {
			k := key{e.App, e.Token}
			if w, ok := want[k]; !ok || e.At >= w.At {
				want[k] = e
			}
		}
		got := collapse(events)
		if len(got) != len(want) {
			t.Fatalf("%d events collapsed to %d, want %d", n, len(got), len(want))
		}
		for i, e := range got {
			if w := want[key{e.App, e.Token}]; e != w {
				t.Fatalf("kept %+v, want %+v", e, w)
			}
			if i > 0 && cmp.Or(cmp.Compare(got[i-1].App, e.App), cmp.Compare(got[i-1].Token, e.Token)) >= 0 {
				t.Fatalf("not sorted by (app, token): %+v before %+v", got[i-1], e)
			}
		}
	}
}
