package main

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/dedupe"
)

// registry wires each row of the stage table (pipeline.Stages) to its own
// flags, and through them to its handler (stage.build). It is the one place
// cmd names the stages: `pushpipe <stage>` and `pushpipe all` are both made
// from it, so a new stage is its row, its package and one line here: its
// constructor (plain), or, for a stage with flags of its own, their type
// (wire) in a file beside this one, as ingest.go. TestRegistryCoversStageTable
// holds the two in step.
var registry = map[string]wiring{
	"ingest":  wire[IngestFlags]("Run the ingest stage: device events to bulk upserts."),
	"split":   wire[SplitFlags]("Run the split stage: campaigns to subscriber ranges."),
	"resolve": wire[ResolveFlags]("Run the resolve stage: ranges to preference-filtered users."),
	"dedupe": plain("Run the dedupe stage: one notification per person.", func(d *deps) pipeline.Handler {
		return dedupe.New(dedupe.Config{Redis: d.rdb, Keys: d.keys, Log: d.log})
	}),
	// Under all its flags keep their names: the providers, sink and rate
	// are what `all` is mostly given.
	"deliver": wire[DeliverFlags]("Run the deliver stage: send to APNs and FCM.").unprefixed(),
	// Its --batch is events per POST (DESIGN), its own flag: --batch
	// under all, entries per read, is every stage's.
	"webhook": wire[WebhookFlags]("Run the webhook stage: result events POSTed in signed batches to your URL.").ownBatch(),
}

// wiring is a stage's entry in the registry.
type wiring struct {
	help  string
	flags func() stage // a new set of the stage's own flags at their zero values, for kong to fill
	bare  bool         // under all, its flags are not prefixed with the stage's name
	// batch: its own flags have a --batch, so its subcommand leaves out the
	// stage flags' (ReadBatch) and its runner reads the stage table's count.
	batch bool
}

// wire is the registry entry of a stage whose own flags are F.
func wire[F any, P interface {
	*F
	stage
}](help string) wiring {
	return wiring{help: help, flags: func() stage { return P(new(F)) }}
}

func (w wiring) unprefixed() wiring { w.bare = true; return w }

func (w wiring) ownBatch() wiring { w.batch = true; return w }

// plain is the registry entry of a stage with no flags of its own (beyond
// every stage's) and no PostgreSQL: its handler's constructor is the whole
// of its wiring.
func plain(help string, build func(d *deps) pipeline.Handler) wiring {
	return wiring{help: help, flags: func() stage { return &plainStage{build} }}
}

// plainStage is a plain stage's (empty) set of flags.
type plainStage struct {
	handler func(d *deps) pipeline.Handler
}

func (plainStage) dbConns() int32 { return 0 }

func (s plainStage) build(d *deps, _ pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	return s.handler(d), nil, nil
}

// checker is a stage's flags that can be refused before anything connects
// (a retry setting deliver would replace, the webhook's unreadable secret
// file): kong's validation runs it, standalone and under all.
type checker interface{ check() error }

// configurable is an Optional row's flags: `pushpipe all` runs the stage
// only when they say it is configured, and refuses its other flags given
// without the one that configures it (configuredBy, unprefixed).
type configurable interface {
	configured() bool
	configuredBy() string
}

// prefixed is a stage's flags that name themselves at run time (advice in
// logs): under all they are told their prefix.
type prefixed interface{ setPrefix(string) }

// runnerOptioner is a stage's flags that decide some of its runner's
// options: the webhook's consumer group (--group, one per receiver) and
// where a new one begins (--from).
type runnerOptioner interface{ runnerOptions(o *pipeline.Options) }

func check(def pipeline.StageDef, s stage) error {
	var errs []error
	if def.DB {
		errs = append(errs, dbConnsAtLeastOne("--db-conns", s.dbConns()))
	}
	if c, ok := s.(checker); ok {
		errs = append(errs, c.check())
	}
	return errors.Join(errs...)
}

// dbConnsAtLeastOne refuses a pool size below 1 (flag names it): pgx read
// 0 as its default (4, or the CPUs) without a word, and a negative one was
// taken off the pool the process's other stages and API share.
func dbConnsAtLeastOne(flag string, n int32) error {
	if n >= 1 {
		return nil
	}
	return fmt.Errorf("%s must be at least 1 PostgreSQL connection (the pool size, opened at start), got %d", flag, n)
}

// stageCmd is `pushpipe <stage>`: the flags every stage takes and the
// stage's own, run by runStages like every stage under all.
type stageCmd struct {
	StageFlags `embed:""`
	// kong.Plugins hold --batch (StageFlags.ReadBatch), but for a stage
	// whose own flags have one (wiring.batch).
	kong.Plugins
	Own  stage `embed:""`
	name string
}

// Validate checks the stage's own flags (kong checks StageFlags itself).
func (c *stageCmd) Validate() error {
	def, _ := pipeline.StageNamed(c.name)
	return check(def, c.Own)
}

// Run serves until SIGTERM.
func (c *stageCmd) Run(g *Globals) error {
	return runStages(g, c.StageFlags, map[string]stage{c.name: c.Own})
}

// stageCommands are the subcommands made from the stage table: one per row,
// and all. They are built anew for each parser (they hold its flags).
func stageCommands() []kong.Option {
	var opts []kong.Option
	for _, def := range pipeline.Stages {
		w := registry[def.Name]
		if w.flags == nil {
			continue // TestRegistryCoversStageTable says which
		}
		c := &stageCmd{name: def.Name, Own: w.flags()}
		if !w.batch {
			c.Plugins = kong.Plugins{&c.ReadBatch}
		}
		opts = append(opts, kong.DynamicCommand(def.Name, w.help, groupPipeline, c))
	}
	opts = append(opts, kong.DynamicCommand("all", "Run the API and every stage in one process.", groupPipeline, newAllCmd()),
		kong.PostBuild(orderCommands), kong.PostBuild(stageDefaultsInHelp))
	return opts
}

// stageDefaultsInHelp writes each stage command's own defaults of the
// flags StageFlags shares into its help: `pushpipe split --help` said
// "(default: the stage's own, see pipeline.Stages)", a Go identifier where
// a newcomer looks for a number. Under all a value given applies to every
// stage, and its help keeps saying so.
func stageDefaultsInHelp(k *kong.Kong) error {
	for _, n := range k.Model.Node.Children {
		def, ok := pipeline.StageNamed(n.Name)
		if !ok {
			continue
		}
		express := def.ExpressConcurrency
		if express <= 0 {
			express = max(1, def.Concurrency/2) // pipeline.Options' default
		}
		for _, f := range n.Flags {
			switch {
			case f.Name == "concurrency":
				f.Help = fmt.Sprintf("Handlers running at once (default %d).", def.Concurrency)
			case f.Name == "express-concurrency" && def.Express:
				f.Help = fmt.Sprintf("Handlers that take express batches only, on top of --concurrency (default %d).", express)
			case f.Name == "express-concurrency":
				f.Help = fmt.Sprintf("Unused: %s has no express lane.", def.Name)
			case f.Name == "batch" && strings.HasPrefix(f.Help, "Entries read per XREADGROUP"):
				f.Help = fmt.Sprintf("Entries read per XREADGROUP (default %d).", def.Batch)
			}
		}
	}
	return nil
}

// orderCommands lists the commands by group (the operator's, then the
// pipeline processes, then the tools: CLI) and the stage subcommands and
// all after api, in pipeline order, where a reader looks for them (kong
// adds dynamic commands last). The order is the help's and that of kong's
// "expected one of" for `pushpipe` alone.
func orderCommands(k *kong.Kong) error {
	root := k.Model.Node
	var stages, rest []*kong.Node
	for _, n := range root.Children {
		if _, ok := pipeline.StageNamed(n.Name); ok || n.Name == "all" {
			stages = append(stages, n)
		} else {
			rest = append(rest, n)
		}
	}
	at := slices.IndexFunc(rest, func(n *kong.Node) bool { return n.Name == "api" }) + 1
	children := slices.Concat(rest[:at], stages, rest[at:])
	rank := func(n *kong.Node) int {
		if n.Group == nil {
			return 0
		}
		return 1 + slices.IndexFunc(groups(), func(g kong.Group) bool { return g.Key == n.Group.Key })
	}
	slices.SortStableFunc(children, func(a, b *kong.Node) int { return rank(a) - rank(b) })
	root.Children = children
	return nil
}

// ownFlags are the stages' own flags under all, each in a struct of its own
// so kong prefixes it with the stage's name (a tag is per type, hence
// reflect.StructOf).
func ownFlags() (kong.Plugins, map[string]stage) {
	var plugins kong.Plugins
	own := map[string]stage{}
	for _, def := range pipeline.Stages {
		w := registry[def.Name]
		if w.flags == nil {
			continue
		}
		tag := `embed:"" prefix:"` + def.Name + `-"`
		if w.bare {
			tag = `embed:""`
		}
		t := reflect.StructOf([]reflect.StructField{{Name: "Flags", Type: reflect.TypeOf(w.flags()).Elem(), Tag: reflect.StructTag(tag)}})
		p := reflect.New(t)
		p.Elem().Field(0).Set(reflect.ValueOf(w.flags()).Elem()) // a plain stage's constructor
		plugins = append(plugins, p.Interface())
		own[def.Name] = p.Elem().Field(0).Addr().Interface().(stage)
		if pf, ok := own[def.Name].(prefixed); ok && !w.bare {
			pf.setPrefix(def.Name + "-")
		}
	}
	return plugins, own
}

// wired are the stages of own that a process runs: every row, less the
// Optional ones not configured.
func wired(own map[string]stage) (map[string]stage, error) {
	out := map[string]stage{}
	var errs []error
	for _, def := range pipeline.Stages {
		s, ok := own[def.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("stage %s of the stage table has no entry in cmd/pushpipe's registry", def.Name))
			continue
		}
		if c, ok := s.(configurable); def.Optional && (!ok || !c.configured()) {
			continue
		}
		out[def.Name] = s
	}
	return out, errors.Join(errs...)
}
