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

// CLI is every subcommand. Each lives in its own file.
type CLI struct {
	Globals
	Version kong.VersionFlag `help:"Print the version (from the build info) and exit."`

	Migrate      MigrateCmd      `cmd:"" help:"Apply the PostgreSQL schema migrations."`
	API          APICmd          `cmd:"" name:"api" help:"Serve the HTTP API (devices, channels, preferences, campaigns, messages) and the console."`
	Results      ResultsCmd      `cmd:"" help:"Read the results stream (tail)."`
	Send         SendCmd         `cmd:"" help:"Create a campaign (--channel) or a direct message (--user, or --token for devices outside the registry)."`
	Campaigns    CampaignsCmd    `cmd:"" help:"List or cancel campaigns."`
	Messages     MessagesCmd     `cmd:"" help:"List direct messages."`
	Channels     ChannelsCmd     `cmd:"" help:"List channels, or count one's subscribers."`
	Users        UsersCmd        `cmd:"" help:"Show or erase one user."`
	Import       ImportCmd       `cmd:"" help:"Load subscribers in bulk."`
	Status       StatusCmd       `cmd:"" help:"Show streams, lag, consumers and campaign progress."`
	Replay       ReplayCmd       `cmd:"" help:"Re-inject retained stream entries into a stage's input."`
	DLQ          DLQCmd          `cmd:"" name:"dlq" help:"Inspect, retry or drop dead letters."`
	Fakeprovider FakeproviderCmd `cmd:"" help:"Serve a fake APNs + FCM endpoint over HTTP/2 TLS."`
	Dev          DevCmd          `cmd:"" help:"Run the whole pipeline locally with a demo campaign."`
	Bench        BenchCmd        `cmd:"" help:"Benchmark the pipeline as separate processes."`
}

// options configure the CLI's parser. Defaults that a package owns come in
// as variables, so the flag and the package cannot disagree.
func options() []kong.Option {
	return append([]kong.Option{
		kong.Name("pushpipe"),
		kong.Description("Send one notification to millions of phones: at most one visible notification per person."),
		kong.Help(helpPrinter),
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
		fmt.Fprintln(os.Stderr, usageError(err))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cli.Globals.ctx = ctx
	if err := kctx.Run(&cli.Globals); err != nil {
		fmt.Fprintln(os.Stderr, "pushpipe:", err)
		os.Exit(exitCode(err))
	}
}
