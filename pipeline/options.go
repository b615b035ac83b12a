package pipeline

import (
	"cmp"
	"os"
	"strconv"
	"time"
)

// Options configure a stage's consumer-group runner.
type Options struct {
	Stage   string // the stage's name: metrics label and default group
	Stream  string // the logical input stream (StreamDedupe...): its bulk lane
	Express bool   // also read the express lane, Express.Stream(Stream), first
	// ExpressConcurrency is how many handlers take express batches only, on
	// top of Concurrency (whose handlers take an express batch before a bulk
	// one, but not two in a row while a bulk one waits), default
	// max(1, Concurrency/2). Only with Express.
	ExpressConcurrency int
	Group              string        // consumer group, default Stage
	Consumer           string        // consumer name, default host-pid
	Partitions         []int         // partitions to serve, default all
	Concurrency        int           // handlers running at once, default 4
	BatchSize          int           // XREADGROUP COUNT, default 100
	Block              time.Duration // XREADGROUP BLOCK, default 2s
	ClaimIdle          time.Duration // take over entries idle this long, default 30s, at least MinClaimIdle
	MaxDeliveries      int64         // dead-letter after this many deliveries, default 10
	ShutdownTimeout    time.Duration // finish in-flight batches within this, default 10s
	Retention          time.Duration // trim acknowledged entries older than this, default 24h; <0 disables
	RetryFor           time.Duration // retry a failing batch in-process this long before leaving it for a claim, default ClaimIdle/2
	// Linger is how long a read that found fewer than BatchSize entries
	// waits for more before its batch goes to a handler; 0 (the default)
	// hands over at once. XREADGROUP's BLOCK returns with the first entry,
	// so a stage whose entries trickle in gets batches of one: for the
	// webhook that was a POST per results entry (20,278 POSTs for 20,510
	// events while a rate-capped campaign went out), the flood of small
	// callbacks a receiver's own API falls over under. A stage that must
	// not wait (dedupe, deliver: a message's latency) keeps 0.
	Linger time.Duration
	// KeepEvery is how often a batch in progress is kept claimed and checked
	// to be still ours (Batch.Lost), default ClaimIdle/3 but at most 250ms:
	// it bounds how long a handler goes on working for entries another
	// consumer took, or that Redis lost. Less than MinKeepEvery is taken
	// as MinKeepEvery.
	KeepEvery time.Duration
	// Outputs are streams the stage writes (per partition) that may have
	// no reader (results): the runner trims them for the partitions it
	// serves, with TrimOutput.
	Outputs []string
	// DelayPoll is how often due delayed entries (Batch.EmitAt, EmitAt) are
	// moved into the stream, default 100ms (a retry's or a schedule's
	// lateness at most) for a stage whose row says Delays or that is not in
	// the stage table; negative (the default of the other stages) disables.
	DelayPoll time.Duration
	// NewGroupAt is where a group the runner creates at start begins: "0"
	// (the default), at the oldest entry kept; "$", at entries written from
	// then on (a webhook receiver added to a running deployment, which
	// wants no day of past events). An existing group goes on where it is,
	// and one recreated after Redis lost it begins at 0: every entry of a
	// stream written since the loss is new.
	NewGroupAt string
	// AliveEvery is how often the process records that it is alive for
	// status (alive.go), default DefaultAliveEvery; it reads stopped three
	// beats after its last one, or at once after a clean shutdown.
	AliveEvery time.Duration
	// StuckAfter is how long a handler may hold one batch, or an entry may
	// stay pending unclaimed, before status reads the stage stuck
	// (stuck.go), default 2×ClaimIdle but at least a minute: a batch that
	// takes longer than ClaimIdle is already past what the runner expects
	// (RetryFor is half of it), and a dead consumer's entries are claimed
	// within 1.25×ClaimIdle. The minute keeps a short --claim-idle (the
	// bench's 3s) from calling a batch slowed by the provider's cap stuck.
	StuckAfter time.Duration
}

// MinClaimIdle is the shortest Options.ClaimIdle: a shorter one is taken
// as MinClaimIdle, the floor pushpipe's --claim-idle refuses below. Below
// it the runner takes live consumers' work: XAUTOCLAIM's min-idle-time is
// in whole milliseconds, so under 1ms it asked for 0 (every pending entry),
// and under 3×MinKeepEvery a batch in progress is kept claimed less often
// than it goes idle, so each claim tick (every 100ms) took batches other
// consumers were handling (ClaimIdle 1µs or 1ms, two runners, a 500ms
// handler: not one of 40 entries finished in two minutes). RetryFor, half
// of it by default, was 0 for 1ns too: a failing batch was never tried
// again in process.
const MinClaimIdle = 100 * time.Millisecond

// MinKeepEvery is the shortest Options.KeepEvery: a batch in progress is
// kept claimed at most this often, whatever KeepEvery or ClaimIdle says.
const MinKeepEvery = 10 * time.Millisecond

func (o *Options) defaults() {
	if o.Group == "" {
		o.Group = o.Stage
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		o.Consumer = host + "-" + strconv.Itoa(os.Getpid())
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.ExpressConcurrency <= 0 {
		o.ExpressConcurrency = max(1, o.Concurrency/2)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	if o.BatchSize > 10_000 {
		o.BatchSize = 10_000 // one commit script's arguments stay a few MB at most
	}
	if o.Block <= 0 {
		o.Block = 2 * time.Second
	}
	if o.ClaimIdle <= 0 {
		o.ClaimIdle = 30 * time.Second
	}
	// Clamped, as KeepEvery is below, before what is derived from it
	// (RetryFor, KeepEvery, StuckAfter): NewRunner has no error to return.
	o.ClaimIdle = max(o.ClaimIdle, MinClaimIdle)
	def, inTable := StageNamed(o.Stage)
	if o.MaxDeliveries <= 0 {
		o.MaxDeliveries = cmp.Or(def.MaxDeliveries, 10)
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.Retention == 0 {
		o.Retention = 24 * time.Hour
	}
	if o.RetryFor <= 0 {
		o.RetryFor = o.ClaimIdle / 2
	}
	if o.DelayPoll == 0 {
		o.DelayPoll = 100 * time.Millisecond
		if inTable && !def.Delays {
			o.DelayPoll = -1
		}
	}
	if o.AliveEvery <= 0 {
		o.AliveEvery = DefaultAliveEvery
	}
	if o.KeepEvery <= 0 {
		o.KeepEvery = min(o.ClaimIdle/3, 250*time.Millisecond)
	}
	// Clamped, as the claim loop's interval is (claim.go): NewRunner has
	// no error to return. A keep is a Redis script per batch in progress,
	// so KeepEvery 1ns sent them without a pause, and a ClaimIdle under
	// 3ns made a ticker of 0, which panicked at the first batch.
	o.KeepEvery = max(o.KeepEvery, MinKeepEvery)
	if o.StuckAfter <= 0 {
		o.StuckAfter = max(2*o.ClaimIdle, time.Minute)
	}
}
