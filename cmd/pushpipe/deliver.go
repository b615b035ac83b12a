package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// DeliverCmd runs the deliver stage: deliver entries to APNs and FCM under a
// cluster-wide rate limit, with delayed retries.
type DeliverCmd struct {
	// Entries carry up to ~1000 users each: a few per read keep a process's
	// share of work small enough to hand over quickly.
	StageFlags `embed:"" set:"batch_default=8"`
	DBConns    int32 `name:"db-conns" default:"8" help:"PostgreSQL connections (the pool size)."`

	APNsKey          string `name:"apns-key" placeholder:"FILE.p8" help:"APNs signing key for token auth."`
	APNsKeyID        string `name:"apns-key-id" help:"Key id of --apns-key."`
	APNsTeamID       string `name:"apns-team-id" help:"Apple developer team id of --apns-key."`
	APNsCert         string `name:"apns-cert" placeholder:"FILE" help:"APNs certificate (.p12 or .pem) for certificate auth, instead of --apns-key."`
	APNsCertPassword string `name:"apns-cert-password" env:"PUSHPIPE_APNS_CERT_PASSWORD" help:"Password of --apns-cert (prefer the environment variable)."`
	APNsTopic        string `name:"apns-topic" placeholder:"BUNDLE" help:"The app's bundle id (apns-topic)."`
	APNsHost         string `name:"apns-host" placeholder:"URL" default:"https://api.push.apple.com" help:"APNs base URL."`
	APNsConns        int    `name:"apns-conns" default:"2" help:"HTTP/2 connections to APNs."`

	FCMCredentials string `name:"fcm-credentials" placeholder:"FILE" help:"Firebase service-account JSON; without it only a non-Google endpoint is allowed, unauthenticated."`
	FCMProject     string `name:"fcm-project" help:"Firebase project id (default: the credentials' project)."`
	FCMEndpoint    string `name:"fcm-endpoint" placeholder:"URL" default:"https://fcm.googleapis.com/v1" help:"FCM v1 API base URL; it must speak HTTP/2 (over HTTP/1.1 sends go one at a time)."`

	Sink        string        `enum:"providers,null" default:"providers" help:"providers sends to APNs and FCM; null accepts every notification without network (to benchmark the pipeline alone)."`
	TPS         int           `name:"tps" default:"10000" help:"Cluster-wide cap on sends per provider and app per second, over every deliver process; 0 disables it."`
	InFlight    int           `name:"in-flight" default:"${in_flight}" help:"Provider requests in flight per process: enough to cover --tps at the provider's latency (rate × latency); also the most a crash can repeat."`
	MaxAttempts int           `name:"max-attempts" default:"8" help:"Sends per device before its user goes to the DLQ."`
	RetryBase   time.Duration `name:"retry-base" default:"500ms" help:"Backoff of the first retry (doubles each attempt, full jitter)."`
	RetryMax    time.Duration `name:"retry-max" default:"60s" help:"Longest backoff."`
	RetryLease  time.Duration `name:"retry-lease" default:"60s" help:"A retry taken by a process that dies comes back after this."`
	LimitMargin time.Duration `name:"limit-margin" default:"100ms" help:"Start no send in the last part of each one-second window (sends just before it also count against the next window), so that a request counted by the provider in the next second still fits the cap."`
}

// Run serves until SIGTERM.
func (c *DeliverCmd) Run(g *Globals) error {
	senders, closeSenders, err := c.senders(g.Context())
	if err != nil {
		return err
	}
	defer closeSenders()
	rdb, err := g.Redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	db, err := g.DB(c.DBConns)
	if err != nil {
		return err
	}
	defer db.Close()

	// The runner fills in the consumer name and the defaults the handler
	// must agree with (it acks its batches itself), so build it first.
	var h *deliver.Handler
	r := pipeline.NewRunner(rdb, g.Keys(), c.StageFlags.options("deliver", pipeline.StreamDeliver),
		pipeline.HandlerFunc(func(ctx context.Context, b *pipeline.Batch) error { return h.Handle(ctx, b) }),
		g.Logger(), pipeline.NewMetrics(g.Registry()))
	h, err = deliver.New(c.stageConfig(g, rdb, db, senders, r.Options()))
	if err != nil {
		return err
	}
	return pipeline.RunGroup(g.Context(),
		func(ctx context.Context) error {
			return pipeline.Serve(ctx, c.HTTP, pipeline.OpsHandler(g.Registry(), stagesReady(rdb, []*pipeline.Runner{r})), g.Logger())
		},
		r.Run,
		h.Run, // the retry poller
	)
}

// stageConfig is the deliver stage the flags describe, bound to the
// effective options of the runner that feeds it (the stage acks its own
// batches, so it must agree with the runner on group, consumer, partitions,
// claim idle and shutdown timeout). `pushpipe all` builds it the same way.
func (c *DeliverCmd) stageConfig(g *Globals, rdb rueidis.Client, db *pgxpool.Pool, senders map[push.Platform]push.Sender, eff pipeline.Options) deliver.Config {
	return deliver.Config{
		Redis: rdb, DB: db, Keys: g.Keys(), Senders: senders,
		Group: eff.Group, Consumer: eff.Consumer, Partitions: eff.Partitions,
		ClaimIdle: eff.ClaimIdle, ShutdownTimeout: eff.ShutdownTimeout,
		TPS: c.TPS, InFlight: c.InFlight, MaxAttempts: c.MaxAttempts,
		RetryBase: c.RetryBase, RetryMax: c.RetryMax, RetryLease: c.RetryLease, LimitMargin: c.LimitMargin,
		Log: g.Logger(), Metrics: g.Registry(),
	}
}

// senders builds a sender per platform from the flags: APNs when a key or a
// certificate is given, FCM when a project, credentials or a non-Google
// endpoint is given, or the null sink for both.
func (c *DeliverCmd) senders(ctx context.Context) (map[push.Platform]push.Sender, func(), error) {
	if c.Sink == "null" {
		null := &deliver.NullSender{}
		return map[push.Platform]push.Sender{push.IOS: null, push.Android: null}, func() {}, nil
	}
	out := map[push.Platform]push.Sender{}
	var closers []func()
	if c.APNsKey != "" || c.APNsCert != "" {
		s, err := apns.New(apns.Config{
			KeyFile: c.APNsKey, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID,
			CertFile: c.APNsCert, CertPassword: c.APNsCertPassword,
			Topic: c.APNsTopic, Host: c.APNsHost, Conns: c.APNsConns,
		})
		if err != nil {
			return nil, nil, err
		}
		out[push.IOS] = s
		closers = append(closers, s.Close)
	}
	if c.FCMCredentials != "" || c.FCMProject != "" {
		s, err := fcm.New(ctx, fcm.Config{CredentialsFile: c.FCMCredentials, Project: c.FCMProject, Endpoint: c.FCMEndpoint})
		if err != nil {
			return nil, nil, err
		}
		out[push.Android] = s
		closers = append(closers, s.Close)
	}
	if len(out) == 0 {
		return nil, nil, fmt.Errorf("no provider configured: give --apns-key (or --apns-cert) and/or --fcm-project " +
			"(or --fcm-credentials), or --sink null")
	}
	return out, func() {
		for _, f := range closers {
			f()
		}
	}, nil
}
