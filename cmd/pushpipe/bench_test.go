package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/bench"
)

// `bench --messages --json FILE --markdown FILE` writes both files, in the
// messages report's own shape: it printed its table and ignored both flags.
func TestBenchMessagesWritesItsFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := BenchCmd{Messages: true, JSON: filepath.Join(dir, "sub", "m.json"), Markdown: filepath.Join(dir, "m.md")}
	res := &bench.MessagesResult{Messages: 120, Receipts: 6000, P50: 7, P90: 11, P99: 23, Max: 41,
		Hops:       []bench.Hop{{Name: "dedupe", P50: 2, P99: 5}},
		Floor:      &bench.FloorResult{Messages: 100, Sends: 6000, Receipts: 6000, P50: 3, P90: 5, P99: 10, Max: 12},
		P99ToFloor: 2.3, CPUPerSendToFloor: 1.5}
	if err := c.writeFiles(res); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(c.Markdown)
	if err != nil {
		t.Fatal(err)
	}
	if want := "| 120 (0 failed) | 6000 | 7 | 11 | 23 | 41 |"; !strings.Contains(string(md), want) {
		t.Errorf("--markdown file:\n%s\nwant the messages table, %q", md, want)
	}
	if want := "| floor: the provider clients alone, same fake, same rate: 100 (0 of 6000 sends failed) | 6000 | 3 | 5 | 10 | 12 |"; !strings.Contains(string(md), want) {
		t.Errorf("--markdown file:\n%s\nwant the floor's row, %q", md, want)
	}
	b, err := os.ReadFile(c.JSON)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("--json file %q: %v", b, err)
	}
	for k, v := range map[string]float64{"messages": 120, "receipts": 6000, "p50_ms": 7, "p99_ms": 23, "max_ms": 41} {
		if got[k] != v {
			t.Errorf("--json %s = %v, want %v (file %s)", k, got[k], v, b)
		}
	}
	floor, _ := got["floor"].(map[string]any)
	if floor["p99_ms"] != 10.0 || got["p99_ratio_to_floor"] != 2.3 || got["cpu_per_send_ratio_to_floor"] != 1.5 {
		t.Errorf("--json: floor %v, ratios %v and %v; want the floor's p99 10 ms and the ratios 2.3 and 1.5 (file %s)",
			got["floor"], got["p99_ratio_to_floor"], got["cpu_per_send_ratio_to_floor"], b)
	}
}
