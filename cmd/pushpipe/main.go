// Command pushpipe is one binary with a subcommand per role: each pipeline
// stage, the API, operator tools, the fake provider, the dev launcher and the
// benchmark. main only wires flags to packages.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// CLI is every subcommand. Each lives in its own file. Those an operator
// types come first, in the order a newcomer needs them (dev, then send and
// status): the help and kong's "expected one of" listed the stage
// processes first, which a deployment runs and nobody types. The processes
// are a group of their own (groupPipeline, with the stage commands the
// stage table makes), and the test tools another (groupTools).
type CLI struct {
	Globals
	Version kong.VersionFlag `help:"Print the version (from the build info) and exit."`

	Dev       DevCmd       `cmd:"" help:"Run the whole pipeline locally with a demo campaign."`
	Send      SendCmd      `cmd:"" help:"Create a campaign (--channel) or a direct message (--user, or --token for devices outside the registry)."`
	Status    StatusCmd    `cmd:"" help:"Show a campaign's progress (given its id), then the streams, lag and consumers."`
	Campaigns CampaignsCmd `cmd:"" help:"List or cancel campaigns."`
	Messages  MessagesCmd  `cmd:"" help:"List direct messages."`
	Channels  ChannelsCmd  `cmd:"" help:"List channels, or count one's subscribers."`
	Users     UsersCmd     `cmd:"" help:"Show or erase one user."`
	Results   ResultsCmd   `cmd:"" help:"Read the results stream (tail)."`
	DLQ       DLQCmd       `cmd:"" name:"dlq" help:"Inspect, retry or drop dead letters."`
	Replay    ReplayCmd    `cmd:"" help:"Re-inject retained stream entries into a stage's input."`
	Import    ImportCmd    `cmd:"" help:"Load subscribers in bulk."`

	Migrate MigrateCmd `cmd:"" group:"pipeline" help:"Apply the PostgreSQL schema migrations."`
	API     APICmd     `cmd:"" name:"api" group:"pipeline" help:"Serve the HTTP API (devices, channels, preferences, campaigns, messages) and the console."`

	Fakeprovider FakeproviderCmd `cmd:"" group:"tools" help:"Serve a fake APNs + FCM endpoint over HTTP/2 TLS."`
	Bench        BenchCmd        `cmd:"" group:"tools" help:"Benchmark the pipeline as separate processes."`
}

// The help's groups of commands beside the operator's, in their order.
const (
	groupPipeline = "pipeline"
	groupTools    = "tools"
)

// groups are the help's titles of the command groups.
func groups() []kong.Group {
	return []kong.Group{
		{Key: groupPipeline, Title: "Pipeline processes (what a deployment runs; all runs them in one):"},
		{Key: groupTools, Title: "Testing:"},
	}
}

// options configure the CLI's parser. Defaults that a package owns come in
// as variables, so the flag and the package cannot disagree.
func options() []kong.Option {
	return append([]kong.Option{
		kong.Name("pushpipe"),
		kong.Description("Send one notification to millions of phones: at most one visible notification per person."),
		kong.Help(helpPrinter),
		kong.ExplicitGroups(groups()),
		kong.Vars{
			"in_flight":          strconv.Itoa(deliver.DefaultInFlight),
			"deliver_min_retry":  deliver.MinRetry.String(),
			"version":            version(),
			"device_write_rate":  strconv.Itoa(api.DefaultDeviceWriteRate),
			"max_body_bytes":     strconv.Itoa(api.DefaultMaxBodyBytes),
			"max_body_memory":    strconv.Itoa(api.DefaultMaxBodyMemory),
			"auth_fail_rate":     strconv.FormatFloat(api.DefaultAuthFailRate, 'g', -1, 64),
			"auth_fail_burst":    strconv.Itoa(api.DefaultAuthFailBurst),
			"trusted_proxies":    api.DefaultTrustedProxies,
			"fd_reserve":         strconv.Itoa(fdReserve),
			"operator_conns":     strconv.Itoa(operatorConns),
			"max_partitions":     strconv.Itoa(pipeline.MaxPartitions),
			"stage_streams":      strings.Join(pipeline.StageStreams(), ", "),
			"webhook_batch":      strconv.Itoa(webhook.DefaultBatch),
			"webhook_group":      webhook.DefaultGroup,
			"webhook_max_linger": maxLinger.String(),
		},
	}, stageCommands()...)
}

func main() {
	var cli CLI
	parser, err := kong.New(&cli, options()...)
	if err != nil {
		panic(err) // the CLI struct itself is wrong
	}
	kctx, err := parseArgs(parser, os.Args[1:])
	if err != nil {
		os.Exit(refused(err, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli.Globals.ctx = ctx
	if err := kctx.Run(&cli.Globals); err != nil {
		fmt.Fprintln(os.Stderr, "pushpipe:", err)
		os.Exit(exitCode(err))
	}
}
