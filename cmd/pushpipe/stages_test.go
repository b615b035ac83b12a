package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// standalone returns the flags of `pushpipe <stage>` as parsed.
func (c *CLI) standalone(name string) (StageFlags, stage) {
	switch name {
	case "ingest":
		return c.Ingest.StageFlags, c.Ingest.IngestFlags
	case "split":
		return c.Split.StageFlags, c.Split.SplitFlags
	case "resolve":
		return c.Resolve.StageFlags, c.Resolve.ResolveFlags
	case "dedupe":
		return c.Dedupe.StageFlags, c.Dedupe.DedupeFlags
	case "deliver":
		return c.Deliver.StageFlags, c.Deliver.DeliverFlags
	case "webhook":
		return c.Webhook.StageFlags, c.Webhook.WebhookFlags
	}
	return StageFlags{}, nil
}

// Every stage flag has the same effect standalone and under `all`: the same
// defaults, and a value given to either (prefixed with the stage's name
// under all, but for deliver's) gives the same runner options and the same
// stage flags.
func TestStageFlagsSameUnderAll(t *testing.T) {
	tests := []struct {
		stage string
		own   []string // the stage's own flags, standalone spelling
		all   []string // the same under all
	}{
		{"ingest", []string{"--db-conns", "3"}, []string{"--ingest-db-conns", "3"}},
		{"split", []string{"--range-size", "77", "--segments", "2", "--parallel", "3", "--max-deliver-backlog", "9", "--db-conns", "5"},
			[]string{"--split-range-size", "77", "--split-segments", "2", "--split-parallel", "3", "--split-max-deliver-backlog", "9", "--split-db-conns", "5"}},
		{"resolve", []string{"--parallel", "5", "--db-conns", "6"}, []string{"--resolve-parallel", "5", "--resolve-db-conns", "6"}},
		{"dedupe", nil, nil},
		{"deliver", []string{"--tps", "123", "--in-flight", "7", "--max-attempts", "5", "--sink", "null", "--db-conns", "2"},
			[]string{"--tps", "123", "--in-flight", "7", "--max-attempts", "5", "--sink", "null", "--db-conns", "2"}},
		// Optional: under all it is wired only with --webhook-url, so both
		// spellings give it.
		{"webhook", []string{"--url", "https://h.example/x", "--secret-file", "s", "--rate", "9", "--filter", "outcome=failed", "--attempts", "3"},
			[]string{"--webhook-url", "https://h.example/x", "--webhook-secret-file", "s", "--webhook-rate", "9", "--webhook-filter", "outcome=failed", "--webhook-attempts", "3"}},
	}
	if len(tests) != len(pipeline.Stages) {
		t.Fatalf("%d stages tested, the stage table has %d", len(tests), len(pipeline.Stages))
	}
	shared := []string{"--claim-idle", "7s", "--shutdown-timeout", "3s", "--max-deliveries", "4", "--retention", "1h", "--consumer", "c1"}
	for _, tt := range tests {
		t.Run(tt.stage, func(t *testing.T) {
			def, ok := pipeline.StageNamed(tt.stage)
			if !ok {
				t.Fatalf("%s is not in the stage table", tt.stage)
			}
			for _, give := range [][2][]string{{nil, nil}, {append(append([]string{}, shared...), tt.own...), append(append([]string{}, shared...), tt.all...)}} {
				sf, own := parse(t, append([]string{tt.stage}, give[0]...)...).standalone(tt.stage)
				all := parse(t, append([]string{"all"}, give[1]...)...)
				allOwn, wired := all.All.stages()[tt.stage]
				if def.Optional && len(tt.all) > 0 && len(give[1]) == 0 {
					// all runs an optional stage only when configured.
					if wired {
						t.Errorf("all runs %s without its flags", tt.stage)
					}
					continue
				}
				if !reflect.DeepEqual(own, allOwn) {
					t.Errorf("flags %v: standalone %+v, under all %+v", give[0], own, allOwn)
				}
				if a, b := sf.options(def), all.All.StageFlags.options(def); !reflect.DeepEqual(a, b) {
					t.Errorf("flags %v: runner options standalone %+v, under all %+v", give[0], a, b)
				}
				if o := sf.options(def); len(give[0]) == 0 && (o.BatchSize != def.Batch || o.Concurrency != def.Concurrency) {
					t.Errorf("defaults: batch %d concurrency %d, the stage table says %d and %d", o.BatchSize, o.Concurrency, def.Batch, def.Concurrency)
				}
			}
		})
	}
}

// --version prints the build's version, never an empty string.
func TestVersion(t *testing.T) {
	if v := version(); !strings.HasPrefix(v, "pushpipe ") || len(v) <= len("pushpipe ") {
		t.Errorf("version() = %q", v)
	}
}
