package main

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// command parses args as main does and returns the selected subcommand's
// flags, as kong filled them.
func command(t *testing.T, args ...string) any {
	t.Helper()
	kctx, err := kongParse(args...)
	if err != nil {
		t.Fatal(err)
	}
	return kctx.Selected().Target.Addr().Interface()
}

// kongParse parses args as main does.
func kongParse(args ...string) (*kong.Context, error) {
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		return nil, err
	}
	return k.Parse(args)
}

// fresh readies k for another Parse: Parse resets every value to its
// default, but not whether it was given (Value.Set), which kong's required,
// xor and and checks read. On a kong that had parsed `send --user 1`,
// `send --channel x` was refused ("--channel and --user can't be used
// together"), and a required flag given once read given ever after.
func fresh(k *kong.Kong) *kong.Kong {
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			f.Set = false
		}
		for _, p := range n.Positional {
			p.Set = false
		}
		if n.Argument != nil {
			n.Argument.Set = false
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(k.Model.Node)
	return k
}

// parser is command on one kong, for a test that parses many command
// lines: kong.New took 0.3-0.7 s under -race, 10 s of
// TestStageFlagsSameUnderAll when each of its 22 parses had one of its own.
// Parse resets every flag first, so one command line does not leak into
// the next; what a parse returns points into the parser's CLI, so it is
// read before the same parser parses again (a test comparing two parses
// takes a parser for each).
func parser(t *testing.T) (command func(args ...string) any, parse func(args ...string) error) {
	t.Helper()
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	parse = func(args ...string) error {
		_, err := fresh(k).Parse(args)
		return err
	}
	command = func(args ...string) any {
		t.Helper()
		kctx, err := fresh(k).Parse(args)
		if err != nil {
			t.Fatal(err)
		}
		return kctx.Selected().Target.Addr().Interface()
	}
	return command, parse
}

// The registry and the stage table name the same stages: every row has a
// subcommand with its help, and every registry entry is a row. An Optional
// row's flags say when it is configured (all runs it only then).
func TestRegistryCoversStageTable(t *testing.T) {
	parsedAll := command(t, "all").(*AllCmd) // the flags at their defaults
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range pipeline.Stages {
		w, ok := registry[def.Name]
		if !ok {
			t.Errorf("stage %s has no entry in the registry", def.Name)
			continue
		}
		i := slices.IndexFunc(k.Model.Children, func(n *kong.Node) bool { return n.Name == def.Name })
		if out := help(t, def.Name); i < 0 || k.Model.Children[i].Help == "" ||
			!strings.Contains(out, "Usage: pushpipe "+def.Name) || !strings.Contains(out, "--claim-idle") {
			t.Errorf("`pushpipe %s --help` has no help of its own or lacks the stage flags:\n%s", def.Name, out)
		}
		if def.DB && parsedAll.own[def.Name].dbConns() <= 0 {
			t.Errorf("stage %s needs PostgreSQL (its row's DB) but its flags ask for no connections", def.Name)
		}
		if _, ok := w.flags().(configurable); def.Optional && !ok {
			t.Errorf("stage %s is Optional but its flags have no configured()", def.Name)
		}
	}
	for name := range registry {
		if _, ok := pipeline.StageNamed(name); !ok {
			t.Errorf("registry entry %s is not a row of the stage table", name)
		}
	}
}

// `pushpipe all` runs every row of the table but the Optional ones, the
// same stage value kong filled; and each stage's own flags are offered under
// all with the same type, default and help, prefixed with its name (but
// deliver's).
func TestAllRunsEveryRow(t *testing.T) {
	all := command(t, "all").(*AllCmd)
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	flagsOf := func(name string) map[string]*kong.Flag {
		out := map[string]*kong.Flag{}
		for _, n := range k.Model.Children {
			if n.Name == name {
				for _, f := range n.Flags {
					out[f.Name] = f
				}
			}
		}
		return out
	}
	allFlags := flagsOf("all")
	common, err := kong.New(&struct {
		StageFlags `embed:""`
		ReadBatch  `embed:""`
	}{})
	if err != nil {
		t.Fatal(err)
	}
	for _, def := range pipeline.Stages {
		if _, ok := all.stages()[def.Name]; ok == def.Optional {
			t.Errorf("stage %s (Optional %v): run by all without flags: %v", def.Name, def.Optional, ok)
		}
		prefix := def.Name + "-"
		if registry[def.Name].bare {
			prefix = ""
		}
		for name, f := range flagsOf(def.Name) {
			if slices.ContainsFunc(common.Model.Flags, func(c *kong.Flag) bool { return c.Name == name }) &&
				!(name == "batch" && registry[def.Name].batch) {
				continue // StageFlags, and help
			}
			g, ok := allFlags[prefix+name]
			if !ok {
				t.Errorf("pushpipe %s --%s has no --%s%s under all", def.Name, name, prefix, name)
				continue
			}
			if g.Default != f.Default || g.Help != f.Help || g.Target.Type() != f.Target.Type() {
				t.Errorf("--%s%s under all (%q, %q) differs from pushpipe %s --%s (%q, %q)", prefix, name, g.Default, g.Help, def.Name, name, f.Default, f.Help)
			}
		}
	}
}

// Every stage flag has the same effect standalone and under `all`: the same
// defaults, and a value given to either (prefixed with the stage's name
// under all, but for deliver's) gives the same runner options and the same
// stage flags.
func TestStageFlagsSameUnderAll(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secrets, []byte("s1-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		stage string
		own   []string // the stage's own flags, standalone spelling
		all   []string // the same under all
	}{
		{"ingest", []string{"--db-conns", "3", "--keep-tombstones", "48h"}, []string{"--ingest-db-conns", "3", "--ingest-keep-tombstones", "48h"}},
		{"split", []string{"--range-size", "77", "--segments", "2", "--parallel", "3", "--max-deliver-backlog", "9", "--db-conns", "5", "--paced-ahead", "90s"},
			[]string{"--split-range-size", "77", "--split-segments", "2", "--split-parallel", "3", "--split-max-deliver-backlog", "9", "--split-db-conns", "5", "--split-paced-ahead", "90s"}},
		{"resolve", []string{"--parallel", "5", "--db-conns", "6"}, []string{"--resolve-parallel", "5", "--resolve-db-conns", "6"}},
		{"dedupe", nil, nil},
		{"deliver", []string{"--tps", "123", "--in-flight", "7", "--max-attempts", "5", "--sink", "null", "--db-conns", "2"},
			[]string{"--tps", "123", "--in-flight", "7", "--max-attempts", "5", "--sink", "null", "--db-conns", "2"}},
		// Optional: under all it is wired only with --webhook-url, so both
		// spellings give it.
		// Its --batch is its own (events per POST): --webhook-batch under
		// all, where --batch is every stage's entries per read.
		{"webhook", []string{"--url", "https://h.example/x", "--secret-file", secrets, "--rate", "9", "--filter", "outcome=failed", "--attempts", "3", "--batch", "7", "--from", "now", "--group", "analytics"},
			[]string{"--webhook-url", "https://h.example/x", "--webhook-secret-file", secrets, "--webhook-rate", "9", "--webhook-filter", "outcome=failed", "--webhook-attempts", "3", "--webhook-batch", "7", "--webhook-from", "now", "--webhook-group", "analytics"}},
	}
	shared := []string{"--claim-idle", "7s", "--shutdown-timeout", "3s", "--max-deliveries", "4", "--retention", "1h", "--consumer", "c1", "--express-concurrency", "5"}
	// One parser for all's command lines and one for the stages' own: each
	// iteration compares a parse of each, read before either parses again.
	allCommand, _ := parser(t)
	stageCommand, stageParse := parser(t)
	for _, tt := range tests {
		t.Run(tt.stage, func(t *testing.T) {
			def, ok := pipeline.StageNamed(tt.stage)
			if !ok {
				t.Fatalf("%s is not in the stage table", tt.stage)
			}
			for _, give := range [][2][]string{{nil, nil}, {append(append([]string{}, shared...), tt.own...), append(append([]string{}, shared...), tt.all...)}} {
				all := allCommand(append([]string{"all"}, give[1]...)...).(*AllCmd)
				allOwn, wired := all.stages()[tt.stage]
				if def.Optional && len(tt.all) > 0 && len(give[1]) == 0 {
					// all runs an optional stage only when configured;
					// on its own it refuses to start unconfigured.
					if wired {
						t.Errorf("all runs %s without its flags", tt.stage)
					}
					if err := stageParse(tt.stage); err == nil {
						t.Errorf("pushpipe %s without its flags: accepted", tt.stage)
					}
					continue
				}
				c := stageCommand(append([]string{tt.stage}, give[0]...)...).(*stageCmd)
				sf, own := c.StageFlags, c.Own
				if p, ok := own.(prefixed); ok && !registry[tt.stage].bare {
					p.setPrefix(tt.stage + "-") // what all tells them, for their advice at run time
				}
				if _, ok := own.(*plainStage); ok {
					// No flags of its own: the same constructor both ways.
					if reflect.ValueOf(own.(*plainStage).handler).Pointer() != reflect.ValueOf(allOwn.(*plainStage).handler).Pointer() {
						t.Errorf("%s: standalone and all build different handlers", tt.stage)
					}
				} else if !reflect.DeepEqual(own, allOwn) {
					t.Errorf("flags %v: standalone %+v, under all %+v", give[0], own, allOwn)
				}
				if a, b := sf.options(def), all.StageFlags.options(def); !reflect.DeepEqual(a, b) {
					t.Errorf("flags %v: runner options standalone %+v, under all %+v", give[0], a, b)
				}
				if o := sf.options(def); len(give[0]) == 0 && (o.BatchSize != def.Batch || o.Concurrency != def.Concurrency || o.ExpressConcurrency != def.ExpressConcurrency) {
					t.Errorf("defaults: batch %d concurrency %d express %d, the stage table says %d, %d and %d",
						o.BatchSize, o.Concurrency, o.ExpressConcurrency, def.Batch, def.Concurrency, def.ExpressConcurrency)
				}
				if o := sf.options(def); len(give[0]) > 0 && o.ExpressConcurrency != 5 {
					t.Errorf("--express-concurrency 5: the runner gets %d", o.ExpressConcurrency)
				}
			}
		})
	}
}

// The webhook's --batch is events per POST, as DESIGN has it, and its own
// setting: --webhook-batch under all, where --batch is entries per read
// for every stage and leaves the POSTs alone. Its runner reads the stage
// table's count of entries (each holds many devices' events).
func TestWebhookBatchIsEventsPerPost(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secrets, []byte("s1-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	def, _ := pipeline.StageNamed("webhook")
	tests := []struct {
		args          []string
		post, entries int // events per POST, entries per read
	}{
		{[]string{"webhook", "--url", "https://h.example/x", "--secret-file", secrets}, webhook.DefaultBatch, def.Batch},
		{[]string{"webhook", "--url", "https://h.example/x", "--secret-file", secrets, "--batch", "7"}, 7, def.Batch},
		{[]string{"all", "--webhook-url", "https://h.example/x", "--webhook-secret-file", secrets, "--batch", "3"}, webhook.DefaultBatch, 3},
		{[]string{"all", "--webhook-url", "https://h.example/x", "--webhook-secret-file", secrets, "--webhook-batch", "7"}, 7, def.Batch},
	}
	// parsed is the stage flags and the webhook's own as kong filled them.
	parsed := func(args ...string) (StageFlags, stage) {
		switch c := command(t, args...).(type) {
		case *stageCmd:
			return c.StageFlags, c.Own
		case *AllCmd:
			return c.StageFlags, c.stages()["webhook"]
		}
		t.Fatalf("pushpipe %v is not a stage", args)
		return StageFlags{}, nil
	}
	for _, tt := range tests {
		sf, own := parsed(tt.args...)
		cfg, err := own.(*WebhookFlags).config()
		if err != nil {
			t.Fatal(err)
		}
		if got := sf.options(def).BatchSize; cfg.Batch != tt.post || got != tt.entries {
			t.Errorf("pushpipe %s: %d events per POST, %d entries per read; want %d and %d",
				strings.Join(tt.args, " "), cfg.Batch, got, tt.post, tt.entries)
		}
	}
	// Every other stage's --batch is still entries per read.
	if sf, _ := parsed("dedupe", "--batch", "9"); sf.Batch != 9 {
		t.Errorf("pushpipe dedupe --batch 9: the runner reads %d", sf.Batch)
	}
	for _, args := range [][]string{{"webhook"}, {"all"}} {
		flag := map[string]string{"webhook": "--batch=", "all": "--webhook-batch="}[args[0]]
		out := help(t, args...)
		i := strings.Index(out, flag)
		if i < 0 || !strings.Contains(out[i:min(len(out), i+200)], "Events per POST") {
			t.Errorf("pushpipe %s --help: %s does not say it is events per POST:\n%s", args[0], flag, out)
		}
		if args[0] == "webhook" && strings.Contains(out, "Entries read per XREADGROUP") {
			t.Errorf("pushpipe webhook --help offers entries per read too:\n%s", out)
		}
	}
}

// --version prints the build's version, never an empty string.
func TestVersion(t *testing.T) {
	if v := version(); !strings.HasPrefix(v, "pushpipe ") || len(v) <= len("pushpipe ") {
		t.Errorf("version() = %q", v)
	}
}
