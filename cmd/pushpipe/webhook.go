package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// WebhookFlags are the webhook's own flags; under `all` they are prefixed
// webhook- and the stage runs only when --webhook-url is given. Its --batch
// is events per POST, as DESIGN has it: a results entry holds many devices'
// events, so entries per read (the stage flag --batch, under all) is
// another number.
type WebhookFlags struct {
	URL        string        `name:"url" placeholder:"URL" env:"PUSHPIPE_WEBHOOK_URL" help:"POST result events here (http or https; credentials in it go as Basic auth). Logs show only its scheme, host and port, and a fingerprint of the rest. A URL that holds a secret is better given by the environment variable, out of process listings."`
	SecretFile string        `name:"secret-file" placeholder:"FILE" help:"Signing secrets, one a line: every one signs each POST (rotation)."`
	Batch      int           `name:"batch" default:"${webhook_batch}" help:"Events per POST, at most (a lower --rate caps it too)."`
	Rate       int           `name:"rate" placeholder:"EVENTS_PER_S" help:"Cluster-wide cap on events POSTed per second, over every webhook process; 0 caps nothing."`
	Filter     string        `name:"filter" placeholder:"outcome=failed,invalid" help:"POST only these outcomes (sent, failed, invalid); the others are acked unsent."`
	Timeout    time.Duration `name:"timeout" default:"10s" help:"Longest wait for one POST's answer."`
	Attempts   int           `name:"attempts" default:"5" help:"POSTs per delivery of a batch (exponential backoff with jitter, Retry-After honoured); then it waits for redelivery, and the DLQ after --max-deliveries."`
	RetryBase  time.Duration `name:"retry-base" default:"250ms" help:"Backoff after the first failed POST (doubles each attempt); 10ms or more."`
	RetryMax   time.Duration `name:"retry-max" default:"30s" help:"Longest backoff; at most --retry-after-max."`
	// A day is the bound Validate takes (webhook.MaxRetryAfterMax).
	RetryAfterMax time.Duration `name:"retry-after-max" help:"Longest pause a receiver's Retry-After gets (default 10m, or --retry-max if longer): no POST of the group goes out until it is over, from this process or another (the batches in hand stay this process's; a stop ends the wait at once). A longer one (a day) is waited for this long, then the receiver is asked again. From --retry-max to 24h."`
	Group         string        `name:"group" default:"${webhook_group}" help:"Consumer group, one per receiver: every group gets every event, and the processes of one group share its events (replicas of one receiver)."`
	From          string        `name:"from" enum:"oldest,now" default:"oldest" help:"Where a new --group starts (oldest: every event results still keeps, up to --retention; now: events from now on). A group that exists resumes where it stopped."`
	Linger        time.Duration `name:"linger" default:"250ms" help:"How long a read that found less than a full batch waits for more events before POSTing: fewer, fuller POSTs while events trickle in (a rate-capped campaign, direct messages). 0 POSTs at once; at most ${webhook_max_linger}."`

	prefix string // what these flags begin with: "webhook-" under all (setPrefix)
}

// setPrefix is told the prefix of these flags under all, for the stage's
// advice at run time (webhook.Config.FlagPrefix).
func (c *WebhookFlags) setPrefix(p string) { c.prefix = p }

// runnerOptions sets what of the runner's options the flags decide: the
// group (--group), where it begins when new (--from), and how long a short
// read waits for more (--linger).
func (c WebhookFlags) runnerOptions(o *pipeline.Options) {
	o.Group = c.Group
	o.Linger = c.Linger
	o.NewGroupAt = "0"
	if c.From == "now" {
		o.NewGroupAt = "$"
	}
}

// check refuses, before anything connects, every flag value the stage
// would refuse (webhook.Config.Validate), a zero or negative one typed
// included: kong's defaults stand for the flags not given.
func (c WebhookFlags) check() error {
	cfg, err := c.config()
	var group error
	if c.Group == "" {
		// Config reads "" as DefaultGroup: --group= would have joined the
		// default receiver's group quietly, sharing its events.
		group = fmt.Errorf("--group must be a word of letters, digits, '.', '_' or '-', such as analytics, got %q (leave it out for %s)", c.Group, webhook.DefaultGroup)
	}
	var linger error
	if c.Linger < 0 || c.Linger > maxLinger {
		// Entries read wait in this process's pending list meanwhile: far
		// below --claim-idle, and an event's delay stays a fraction of a
		// receiver's patience.
		linger = fmt.Errorf("--linger must be from 0 to %s, got %s", maxLinger, c.Linger)
	}
	return errors.Join(err, group, linger, cfg.Validate())
}

// maxLinger bounds --linger.
const maxLinger = 5 * time.Second

// config is the stage's Config as the flags give it, without what build
// adds (Redis, the logger, metrics); the error says what of the secret file
// or --filter could not be read.
func (c WebhookFlags) config() (webhook.Config, error) {
	secrets, serr := webhook.LoadSecrets(c.SecretFile)
	outcomes, ferr := c.outcomes()
	return webhook.Config{Group: c.Group, URL: c.URL, Secrets: secrets, Batch: c.Batch, Rate: c.Rate, Outcomes: outcomes, Timeout: c.Timeout,
		Attempts: c.Attempts, RetryBase: c.RetryBase, RetryMax: c.RetryMax, RetryAfterMax: c.RetryAfterMax, FlagPrefix: c.prefix}, errors.Join(serr, ferr)
}

// outcomes parses --filter: "outcome=a,b" or "".
func (c WebhookFlags) outcomes() ([]string, error) {
	if c.Filter == "" {
		return nil, nil
	}
	list, ok := strings.CutPrefix(c.Filter, "outcome=")
	if !ok || list == "" {
		return nil, fmt.Errorf("--filter %q: want outcome=LIST, e.g. outcome=failed,invalid", c.Filter)
	}
	return strings.Split(list, ","), nil
}

// configured: under all the webhook runs only with --webhook-url.
func (c WebhookFlags) configured() bool { return c.URL != "" }

func (WebhookFlags) configuredBy() string { return "url" }

func (WebhookFlags) dbConns() int32 { return 0 }

func (c WebhookFlags) build(d *deps, _ pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	cfg, err := c.config()
	if err != nil {
		return nil, nil, err
	}
	cfg.Redis, cfg.Keys, cfg.Log, cfg.Metrics = d.rdb, d.keys, d.log, d.reg
	h, err := webhook.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return h, nil, nil
}
