package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

// WebhookFlags are the webhook's own flags; under `all` they are prefixed
// webhook- and the stage runs only when --webhook-url is given.
type WebhookFlags struct {
	URL        string        `name:"url" placeholder:"URL" help:"POST result events here (http or https; credentials in it go as Basic auth and are never logged)."`
	SecretFile string        `name:"secret-file" placeholder:"FILE" help:"Signing secrets, one a line: every one signs each POST (rotation)."`
	Rate       int           `name:"rate" placeholder:"EVENTS_PER_S" help:"Cluster-wide cap on events POSTed per second, over every webhook process; 0 caps nothing."`
	Filter     string        `name:"filter" placeholder:"outcome=failed,invalid" help:"POST only these outcomes (sent, failed, invalid); the others are acked unsent."`
	Timeout    time.Duration `name:"timeout" default:"10s" help:"Longest wait for one POST's answer."`
	Attempts   int           `name:"attempts" default:"5" help:"POSTs per delivery of a batch (exponential backoff with jitter, Retry-After honoured); then it waits for redelivery, and the DLQ after --max-deliveries."`
	RetryBase  time.Duration `name:"retry-base" default:"250ms" help:"Backoff after the first failed POST (doubles each attempt)."`
	RetryMax   time.Duration `name:"retry-max" default:"30s" help:"Longest backoff, and longest Retry-After honoured."`
}

// check refuses to start without a usable URL or secret file, before
// anything connects.
func (c WebhookFlags) check() error {
	if err := webhook.CheckURL(c.URL); err != nil {
		return err
	}
	if _, err := webhook.LoadSecrets(c.SecretFile); err != nil {
		return err
	}
	_, err := c.outcomes()
	return err
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

func (WebhookFlags) dbConns() int32 { return 0 }

func (c WebhookFlags) build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	secrets, err := webhook.LoadSecrets(c.SecretFile)
	if err != nil {
		return nil, nil, err
	}
	outcomes, err := c.outcomes()
	if err != nil {
		return nil, nil, err
	}
	h, err := webhook.New(webhook.Config{Redis: d.rdb, Keys: d.keys, URL: c.URL, Secrets: secrets,
		Batch: eff.BatchSize, Rate: c.Rate, Outcomes: outcomes, Timeout: c.Timeout, Attempts: c.Attempts,
		RetryBase: c.RetryBase, RetryMax: c.RetryMax, Log: d.log, Metrics: d.reg})
	if err != nil {
		return nil, nil, err
	}
	return h, nil, nil
}
