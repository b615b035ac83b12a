package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// DeliverFlags are deliver's own flags (under `all` too, unprefixed: the
// provider settings are what `all` is mostly given).
type DeliverFlags struct {
	DBConns          int32  `name:"db-conns" default:"8" help:"PostgreSQL connections (the pool size, opened at start)."`
	Apps             string `name:"apps" placeholder:"FILE" help:"Apps file (TOML): every app's APNs and FCM credentials, instead of the single-app provider flags; SIGHUP reloads it."`
	APNsKey          string `name:"apns-key" placeholder:"FILE.p8" help:"APNs signing key for token auth."`
	APNsKeyID        string `name:"apns-key-id" help:"Key id of --apns-key."`
	APNsTeamID       string `name:"apns-team-id" help:"Apple developer team id of --apns-key."`
	APNsCert         string `name:"apns-cert" placeholder:"FILE" help:"APNs certificate (.p12 or .pem) for certificate auth, instead of --apns-key."`
	APNsCertPassword string `name:"apns-cert-password" hidden:"" help:"Deprecated (it shows in process listings): use --apns-cert-password-file or PUSHPIPE_APNS_CERT_PASSWORD."`
	APNsTopic        string `name:"apns-topic" placeholder:"BUNDLE" help:"The app's bundle id (apns-topic), and the id of the one app the provider flags serve (with FCM alone too); other apps' devices fail with 'no credentials' (use --apps for several)."`
	APNsHost         string `name:"apns-host" placeholder:"URL" default:"https://api.push.apple.com" help:"APNs base URL (default ${default}; development builds' tokens: https://api.sandbox.push.apple.com)."`
	APNsConns        int    `name:"apns-conns" default:"2" help:"HTTP/2 connections to APNs."`

	// The password is read from a file or PUSHPIPE_APNS_CERT_PASSWORD
	// (certPassword), not a flag, which shows in process listings and the
	// pod spec. The flag still works, for one release, with a warning.
	APNsCertPasswordFile string `name:"apns-cert-password-file" type:"path" placeholder:"FILE" env:"PUSHPIPE_APNS_CERT_PASSWORD_FILE" help:"File holding the password of --apns-cert (or set PUSHPIPE_APNS_CERT_PASSWORD)."`

	FCMCredentials string `name:"fcm-credentials" placeholder:"FILE" help:"Firebase service-account JSON; without it only a non-Google endpoint is allowed, unauthenticated."`
	FCMProject     string `name:"fcm-project" help:"Firebase project id (default: the credentials' project)."`
	FCMEndpoint    string `name:"fcm-endpoint" placeholder:"URL" default:"https://fcm.googleapis.com/v1" help:"FCM v1 API base URL (default ${default}); it must speak HTTP/2 (over HTTP/1.1 sends go one at a time)."`

	Sink            string        `enum:"providers,null" default:"providers" help:"providers sends to APNs and FCM; null accepts every notification without network (to benchmark the pipeline alone)."`
	TPS             int           `name:"tps" default:"10000" help:"Cluster-wide cap on the sends per provider and app that reach the provider in any one-second window, over every deliver process; 0 disables it (an app's own tps in --apps still holds). FCM's 429 for the project's quota lowers it for a while (APNs's 429 is about one device, whose retry waits)."`
	InFlight        int           `name:"in-flight" default:"${in_flight}" help:"Provider requests in flight per process: enough to cover --tps at the provider's latency (rate × latency); also the most a crash can repeat."`
	ExpressInFlight int           `name:"express-in-flight" help:"Provider requests in flight per process reserved for the express lane (messages, high-priority campaigns), on top of --in-flight (default: a quarter of --in-flight)."`
	ExpressShare    float64       `name:"express-share" default:"0.2" help:"Share of --tps reserved for the express lane; bulk campaigns get the rest, so messages never queue behind a campaign running at the cap. Messages also take what campaigns leave unused."`
	ExpressTarget   time.Duration `name:"express-target" default:"25ms" help:"How long express entries (messages) may wait before deliver starts them; while they wait longer, bulk campaigns halve their sends in flight, and grow back once they do not (a machine short of CPU serves messages first); 0 never slows bulk."`
	MaxAttempts     int           `name:"max-attempts" default:"8" help:"Sends per device before its user goes to the DLQ."`
	RetryBase       time.Duration `name:"retry-base" default:"500ms" help:"Backoff of the first retry (doubles each attempt, full jitter); ${deliver_min_retry} or more."`
	RetryMax        time.Duration `name:"retry-max" default:"60s" help:"Longest backoff; ${deliver_min_retry} or more."`
	Results         bool          `name:"results" default:"true" negatable:"" help:"Append a result event per device to the results stream (read by pushpipe webhook and results tail); --no-results turns it off."`

	// alsoApps is all's API, which reads the apps file too: deliver's
	// SIGHUP reload applies it to both (applyApps).
	alsoApps appsUser
}

// check refuses retry settings deliver would quietly replace by defaults,
// and provider flags that do not say which app they serve.
func (c DeliverFlags) check() error {
	// The stage's own floor (deliver.MinRetry), said of the flags: a 1ns
	// --retry-base resent to a failing provider as fast as the runner's
	// delay poll released retries, up to --max-attempts. The flag needs no
	// higher one (it had 100ms): a process's retries wait for that poll
	// (100ms) anyway, so a shorter backoff only comes back at the next
	// poll. Kong's defaults stand for the flags not given, so a zero here
	// was typed: refused, not read as the default.
	errs := []error{deliver.CheckRetry(c.RetryBase, c.RetryMax)}
	// Each said of its flag, with the value: "--in-flight and
	// --max-attempts must be at least 1, --tps at least 0" left the
	// operator to find which of the three was wrong.
	for _, n := range []struct {
		flag string
		v    int
	}{{"--in-flight", c.InFlight}, {"--max-attempts", c.MaxAttempts}} {
		if n.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", n.flag, n.v))
		}
	}
	if c.TPS < 0 {
		errs = append(errs, fmt.Errorf("--tps must be 0 (no cap) or more sends per second, got %d", c.TPS))
	}
	// deliver.Config refuses these only once Redis and PostgreSQL answer,
	// naming no flag, and reads a share of 0 as its default.
	if c.ExpressShare <= 0 || c.ExpressShare >= 1 {
		errs = append(errs, fmt.Errorf("--express-share must be a share of --tps between 0 and 1 (exclusive), such as %g, got %g",
			deliver.DefaultExpressShare, c.ExpressShare))
	}
	if c.ExpressInFlight < 0 {
		errs = append(errs, fmt.Errorf("--express-in-flight must be 0 (a quarter of --in-flight) or more, got %d", c.ExpressInFlight))
	}
	if c.ExpressTarget < 0 {
		errs = append(errs, fmt.Errorf("--express-target must be 0 (never slow bulk) or a positive duration such as 25ms, got %v", c.ExpressTarget))
	}
	if other := c.certPasswordBesideFile(); other != "" {
		// Which one to use would be a guess.
		errs = append(errs, fmt.Errorf("--apns-cert-password-file (PUSHPIPE_APNS_CERT_PASSWORD_FILE) and %s both give the password "+
			"of --apns-cert: keep one, the file", other))
	} else if _, err := c.certPassword(); err != nil {
		errs = append(errs, err)
	}
	if given := c.singleAppGiven(); c.Apps != "" && len(given) > 0 {
		// Refused at build before, after Redis and PostgreSQL, and
		// --apns-topic alone not at all: the file's apps were served and
		// the flag dropped without a word.
		errs = append(errs, fmt.Errorf("%s given with --apps: the apps file replaces the single-app provider flags; "+
			"put them in the app's entry (topic, key, credentials, ...) and leave them out", strings.Join(given, ", ")))
	}
	if c.Sink != "null" && c.Apps == "" && c.singleAppFlags() && c.APNsTopic == "" {
		errs = append(errs, errors.New("give --apns-topic: the provider flags serve the one app whose id it is "+
			"(its bundle id; with FCM alone too), or give every app in --apps"))
	}
	return errors.Join(errs...)
}

// envAPNsCertPassword holds the password of --apns-cert, if no file does.
const envAPNsCertPassword = "PUSHPIPE_APNS_CERT_PASSWORD"

// certPassword is the password of --apns-cert: the first line of
// --apns-cert-password-file, or the deprecated flag, or
// PUSHPIPE_APNS_CERT_PASSWORD (the flag wins over the variable, as it did
// when the two were one setting). check refuses a file with either.
func (c DeliverFlags) certPassword() (string, error) {
	switch {
	case c.APNsCertPasswordFile != "":
		b, err := os.ReadFile(c.APNsCertPasswordFile)
		if err != nil {
			return "", fmt.Errorf("--apns-cert-password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case c.APNsCertPassword != "":
		return c.APNsCertPassword, nil
	}
	return os.Getenv(envAPNsCertPassword), nil
}

// certPasswordBesideFile names the other source of the password of
// --apns-cert when --apns-cert-password-file is given too.
func (c DeliverFlags) certPasswordBesideFile() string {
	switch {
	case c.APNsCertPasswordFile == "":
		return ""
	case c.APNsCertPassword != "":
		return "--apns-cert-password"
	case os.Getenv(envAPNsCertPassword) != "":
		return envAPNsCertPassword
	}
	return ""
}

// singleAppGiven names the single-app provider flags given (those with no
// default), the password of --apns-cert included: beside --apps it was
// read by nobody, and the operator believed a certificate's password set.
// PUSHPIPE_APNS_CERT_PASSWORD counts unless an app of the file names it
// as its password_env (then it is the file's, not the flag's).
func (c DeliverFlags) singleAppGiven() []string {
	var given []string
	for _, f := range []struct{ name, v string }{{"--apns-key", c.APNsKey}, {"--apns-key-id", c.APNsKeyID},
		{"--apns-team-id", c.APNsTeamID}, {"--apns-cert", c.APNsCert}, {"--apns-cert-password", c.APNsCertPassword},
		{"--apns-cert-password-file", c.APNsCertPasswordFile}, {"--apns-topic", c.APNsTopic},
		{"--fcm-credentials", c.FCMCredentials}, {"--fcm-project", c.FCMProject}} {
		if f.v != "" {
			given = append(given, f.name)
		}
	}
	if os.Getenv(envAPNsCertPassword) != "" && !c.appsReadEnv(envAPNsCertPassword) {
		given = append(given, envAPNsCertPassword)
	}
	return given
}

// appsReadEnv is whether an app of --apps reads the variable name as its
// APNs password_env; false when there is no file, or it does not load
// (providers says why).
func (c DeliverFlags) appsReadEnv(name string) bool {
	if c.Apps == "" {
		return false
	}
	apps, err := deliver.LoadApps(c.Apps)
	if err != nil {
		return false
	}
	for _, a := range apps.Apps {
		if a.APNS != nil && a.APNS.PasswordEnv == name {
			return true
		}
	}
	return false
}

// singleAppFlags reports whether credentials were given by the single-app
// provider flags.
func (c DeliverFlags) singleAppFlags() bool {
	return c.APNsKey != "" || c.APNsCert != "" || c.FCMCredentials != "" || c.FCMProject != ""
}

func (c DeliverFlags) dbConns() int32 { return c.DBConns }

// build makes the deliver stage; the runner does the rest (its retries are
// the runner's delayed entries).
func (c DeliverFlags) build(d *deps, eff pipeline.Options) (pipeline.Handler, []func(context.Context) error, error) {
	senders, express, closeSenders, appTPS, runners, err := c.providers(d)
	if err != nil {
		return nil, nil, err
	}
	d.closers = append(d.closers, closeSenders)
	h, err := deliver.New(deliver.Config{
		Redis: d.rdb, DB: d.db, Keys: d.keys, Senders: senders, ExpressSenders: express,
		TPS: c.TPS, AppTPS: appTPS, InFlight: c.InFlight, ExpressInFlight: c.ExpressInFlight, ExpressShare: c.ExpressShare,
		ExpressTarget: c.ExpressTarget,
		MaxAttempts:   c.MaxAttempts,
		RetryBase:     c.RetryBase, RetryMax: c.RetryMax,
		NoResults: !c.Results, Log: d.log, Metrics: d.reg,
	})
	if err != nil {
		return nil, nil, err
	}
	return h, runners, nil
}

// providers builds the bulk lane's senders and the express lane's own
// (deliver.Config.ExpressSenders: the same providers over connections of
// their own; none for the null sink, which has no connections), from the
// --apps file or the single-app flags, with what closes them and, for an
// apps file, its per-app caps and the SIGHUP reloader of both sets.
func (c DeliverFlags) providers(d *deps) (bulk, express map[push.Platform]push.Sender, closeAll func(), appTPS func(string) int,
	runners []func(context.Context) error, err error) {
	if c.APNsCertPassword != "" {
		// Still read, so that an upgrade starts as before; said at every
		// start until it is gone.
		d.log.Warn().Msg("--apns-cert-password is deprecated and goes away in the next release: it shows in process listings " +
			"and the pod spec; give the password by --apns-cert-password-file (PUSHPIPE_APNS_CERT_PASSWORD_FILE) or " + envAPNsCertPassword)
	}
	if c.Sink == "null" || c.Apps == "" {
		var closeBulk, closeExpress func()
		if bulk, closeBulk, err = c.senders(d.ctx); err != nil {
			return nil, nil, nil, nil, nil, err
		}
		if c.Sink == "null" {
			return bulk, nil, closeBulk, nil, nil, nil
		}
		if express, closeExpress, err = c.senders(d.ctx); err != nil {
			closeBulk()
			return nil, nil, nil, nil, nil, err
		}
		return deliver.OnlyApp(c.APNsTopic, bulk), deliver.OnlyApp(c.APNsTopic, express),
			func() { closeBulk(); closeExpress() }, nil, nil, nil
	}
	if c.singleAppFlags() {
		return nil, nil, nil, nil, nil, fmt.Errorf("give --apps or the single-app provider flags (--apns-key, --apns-cert, --fcm-*), not both")
	}
	apps, err := deliver.LoadApps(c.Apps)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	opts := deliver.SenderOptions{APNsConns: c.APNsConns}
	b, err := deliver.NewAppSenders(d.ctx, apps, opts, d.log)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	x, err := deliver.NewAppSenders(d.ctx, apps, opts, d.log)
	if err != nil {
		b.Close()
		return nil, nil, nil, nil, nil, err
	}
	return b.Senders(), x.Senders(), func() { b.Close(); x.Close() }, b.TPS,
		[]func(context.Context) error{reloadAppsOnHUP(c.Apps, d.log, applyApps(c.alsoApps, b, x))}, nil
}

// senders builds a sender per platform from the flags: APNs when a key or a
// certificate is given, FCM when a project, credentials or a non-Google
// endpoint is given, or the null sink for both.
func (c DeliverFlags) senders(ctx context.Context) (map[push.Platform]push.Sender, func(), error) {
	if c.Sink == "null" {
		null := &deliver.NullSender{}
		return map[push.Platform]push.Sender{push.IOS: null, push.Android: null}, func() {}, nil
	}
	out := map[push.Platform]push.Sender{}
	var closers []func()
	if c.APNsKey != "" || c.APNsCert != "" {
		password, err := c.certPassword()
		if err != nil {
			return nil, nil, err
		}
		s, err := apns.New(apns.Config{
			KeyFile: c.APNsKey, KeyID: c.APNsKeyID, TeamID: c.APNsTeamID,
			CertFile: c.APNsCert, CertPassword: password,
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
