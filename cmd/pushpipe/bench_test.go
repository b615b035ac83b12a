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
		Hops: []bench.Hop{{Name: "dedupe", P50: 2, P99: 5}}}
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
}
