// Package deliver is the last stage: for each deliver entry (a campaign and a
// batch of user ids of one partition) it loads the users' valid device
// tokens, skips devices already done for the campaign, sends the rest to APNs
// or FCM under a cluster-wide rate limit with bounded concurrency, turns dead
// tokens into ingest invalidations, schedules transient failures into a
// delayed retry set, and acks the entry once every user is terminal or
// scheduled.
package deliver

import (
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Config is everything the stage needs. Reading, acking, keeping batches
// claimed, retries' timing and dead letters are the runner's: nothing here
// repeats its options.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys

	// Senders maps a platform to its provider; a device of a platform with
	// no sender is counted failed.
	Senders map[push.Platform]push.Sender
	// ExpressSenders, when set, are the express lane's own senders (their
	// own provider connections): an express request then never waits in a
	// connection behind the bulk lane's requests in flight (1,024 a
	// process; beside a campaign at full speed that took a message's p50
	// from 345 to 147 ms). A platform missing here sends with its Senders
	// entry.
	ExpressSenders map[push.Platform]push.Sender

	// TPS caps the sends per provider and app that reach the provider in
	// any one-second window, across every deliver process; 0 disables the
	// limiter. A provider that refuses sends for its rate lowers it for a
	// while (see limiter).
	TPS int
	// AppTPS, if set, is an app's own cap per provider (the apps file's
	// tps: AppSenders.TPS), split between the lanes as TPS is; each lane's
	// part applies when lower than the lane's part of TPS.
	AppTPS func(app string) int
	// InFlight bounds provider requests (sent, not yet recorded) per process;
	// default DefaultInFlight. It is also the most duplicates a crash can
	// cause.
	InFlight int
	// ExpressInFlight is the provider requests in flight reserved for the
	// express lane (messages, high-priority campaigns), on top of InFlight:
	// a bulk campaign holding every one of its slots never delays an
	// express send. Default max(1, InFlight/4). A crash repeats at most
	// InFlight + ExpressInFlight sends.
	ExpressInFlight int
	// ExpressShare is the share of TPS reserved for the express lane, in
	// (0, 1); default DefaultExpressShare. The bulk lane is capped at the
	// rest, whether or not express traffic uses its share: the reservation
	// is what keeps messages fast while a campaign runs at the cap. The
	// express lane also takes what the bulk lane leaves unused (limiter's
	// lender), so its share is a floor, not its limit.
	ExpressShare float64
	// ExpressTarget is how long express entries may wait between their
	// write to the stream and the start of their round before the bulk
	// lane gives way: its in-flight sends halve while they wait longer,
	// and grow back once they do not (yield.go). 0: the bulk lane never
	// yields. pushpipe deliver's default is DefaultExpressTarget.
	ExpressTarget time.Duration
	// MaxAttempts is the send budget of a device (first send included);
	// default 8. A user whose devices exhaust it goes to the DLQ.
	MaxAttempts int
	// RetryBase and RetryMax shape the backoff: attempt n waits a random
	// time in [0, min(RetryMax, RetryBase·2^(n-1))], but at least the
	// provider's Retry-After. Defaults 500ms and 60s (for zero); at least
	// MinRetry, and RetryMax at least RetryBase (CheckRetry).
	RetryBase, RetryMax time.Duration
	// NoResults turns off the results stream: no result event per device
	// (DESIGN: results are on unless a deployment turns them off).
	NoResults bool

	Log     zerolog.Logger
	Metrics prometheus.Registerer // nil registers nothing

	// cancelForget, when set, is the cancel watcher's Forget: tests
	// shorten the minute to forget campaigns while they send.
	cancelForget time.Duration
	// recordPoll, when set, is the campaign watchers' RecordPoll (cancels
	// and rates): tests shorten the 5 s they read the records at.
	recordPoll time.Duration
	// maxPutOff, when set, is pace.go's maxPutOff: tests shorten it.
	maxPutOff time.Duration
	// donePaceEvery is how often the readings of the pace are taken
	// (pipeline.DonePaceEvery, set by defaults): tests take one
	// at every count (1ns: 0 ms).
	donePaceEvery time.Duration
}

// DefaultInFlight is enough provider requests in flight for one process to
// reach the default cap of 10,000 sends/s (pushpipe deliver --tps) at the
// ~100 ms a send takes to APNs or FCM from a cloud region (Little's law:
// 10,000/s × 0.1 s = 1,000), and about what one APNs connection carries
// (up to 1,000 concurrent streams). A crash repeats at most this many sends,
// each with the campaign's collapse id.
const DefaultInFlight = 1024

// DefaultExpressShare of the provider cap is kept for the express lane: at
// the default 10,000 sends/s, 2,000 sends/s of messages (40 chat messages
// of 50 recipients a second) never queue behind a campaign.
const DefaultExpressShare = 0.2

// MinRetry is the shortest RetryBase and RetryMax: a retry round resends
// to the provider that just failed, and at 1ns the rounds came back without
// a pause, as fast as the runner's delay poll released them, until
// MaxAttempts was spent. 10ms is the webhook's floor too (webhook.MinRetry)
// and the shortest backoff of the stage's own tests.
const MinRetry = 10 * time.Millisecond

// DefaultExpressTarget leaves a chat message's push most of a 50 ms budget
// from the API's 202 to the provider, after the API and dedupe hops.
const DefaultExpressTarget = 25 * time.Millisecond

func (c *Config) defaults() {
	if c.InFlight <= 0 {
		c.InFlight = DefaultInFlight
	}
	if c.ExpressInFlight <= 0 {
		c.ExpressInFlight = max(1, c.InFlight/4)
	}
	if c.ExpressShare == 0 {
		c.ExpressShare = DefaultExpressShare
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 8
	}
	// Only zero: a negative backoff is a mistake, which CheckRetry names.
	if c.RetryBase == 0 {
		c.RetryBase = 500 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 60 * time.Second
	}
	if c.donePaceEvery <= 0 {
		c.donePaceEvery = pipeline.DonePaceEvery
	}
}

// laneTPS splits TPS between the lanes: express gets its share (at least
// one send a second), bulk the rest (at least one too). 0 stays 0: no cap.
func (c *Config) laneTPS() (bulk, express int) { return c.splitTPS(c.TPS) }

// splitTPS splits a cap, TPS or an app's own, between the lanes.
func (c *Config) splitTPS(tps int) (bulk, express int) {
	if tps <= 0 {
		return tps, tps
	}
	express = min(max(1, int(float64(tps)*c.ExpressShare+0.5)), max(tps-1, 1))
	return max(1, tps-express), express
}

func (c *Config) validate() error {
	var errs []error
	if c.Redis == nil {
		errs = append(errs, errors.New("no Redis client"))
	}
	if c.DB == nil {
		errs = append(errs, errors.New("no database pool"))
	}
	if len(c.Senders) == 0 {
		errs = append(errs, errors.New("no provider sender"))
	}
	if c.TPS < 0 {
		errs = append(errs, fmt.Errorf("tps must not be negative, got %d", c.TPS))
	}
	if c.ExpressTarget < 0 {
		errs = append(errs, fmt.Errorf("express target must not be negative, got %v", c.ExpressTarget))
	}
	if c.ExpressShare <= 0 || c.ExpressShare >= 1 {
		errs = append(errs, fmt.Errorf("express share must be between 0 and 1 (exclusive), got %g", c.ExpressShare))
	}
	errs = append(errs, CheckRetry(c.RetryBase, c.RetryMax))
	return errors.Join(errs...)
}

// CheckRetry refuses a backoff New would not run with: RetryBase or
// RetryMax under MinRetry, or a RetryMax shorter than RetryBase (every wait
// would be RetryMax, RetryBase said nothing). It fills no defaults: New
// calls it after them, pushpipe deliver on its flags at parse time, where a
// zero typed is refused. Its errors name the flags (--retry-base for
// RetryBase), as webhook.Config.Validate's do.
func CheckRetry(base, most time.Duration) error {
	var errs []error
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--retry-base", base}, {"--retry-max", most}} {
		if d.v < MinRetry {
			errs = append(errs, fmt.Errorf("%s must be %v or more, such as 500ms (each retry round resends to the provider that failed), got %v",
				d.flag, MinRetry, d.v))
		}
	}
	if base >= MinRetry && most >= MinRetry && most < base {
		errs = append(errs, fmt.Errorf("--retry-max (%v) is shorter than --retry-base (%v): make it as long or longer", most, base))
	}
	return errors.Join(errs...)
}
