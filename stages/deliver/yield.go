package deliver

import (
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// yield makes the bulk lane give way when the express lane falls behind.
//
// The lanes have their own in-flight slots, permits and provider
// connections, so a campaign never holds a message's slot or permit. What
// they still share is the machine: when deliver, the provider clients (and
// on a small box the rest of the pipeline) are short of CPU, each lane gets
// CPU in proportion to its sends in flight, and a campaign's thousand
// sends outweigh a chat message's fifty. Measured on two cores, 200
// messages/s of 50 recipients beside a 1M campaign: messages took 9 s, half
// the sends were the campaign's.
//
// So, as TCP does with a congested link: while express entries wait longer
// than Target between their write to the stream and the start of their
// round, the bulk lane's in-flight limit halves (at most every cutEvery,
// down to min); once they stop waiting it doubles back every regrowEvery,
// up to all of InFlight. The bulk lane never stops, it slows. As CoDel
// does with a queue, only a wait that lasts counts: an express round on
// time within the last cutEvery means a burst, not a lane falling behind,
// and cuts nothing (a campaign on a busy box would otherwise be cut to its
// floor by a few late rounds among many on time). An express
// lane held back by its own share of the provider cap is not late because
// of the campaign (cutting bulk would not help it): while its permits are
// what it waits for, nothing is cut.
type yield struct {
	target   time.Duration // 0: never yield
	max, min int
	log      zerolog.Logger

	mu      sync.Mutex
	base    int       // the limit set by the last cut
	cut     time.Time // the last cut; zero: none (the limit is max)
	onTime  time.Time // the last express round that started within the target
	capped  time.Time // the last time express waited on its own permits
	yielded bool      // logged as yielding, not yet as back to max
	logged  time.Time // when yielding was last logged: once a minute at most
}

const (
	// cutEvery spaces the cuts: a cut takes effect as bulk sends in flight
	// end, and express entries read before it still show the wait.
	cutEvery = 100 * time.Millisecond
	// regrowEvery is how often the limit doubles once nothing cuts it: from
	// the floor back to 1,024 in about three seconds.
	regrowEvery = 400 * time.Millisecond
	// cappedFor is how long an express permit wait longer than the target
	// keeps cuts off.
	cappedFor = time.Second
)

func newYield(target time.Duration, inFlight int, log zerolog.Logger) *yield {
	return &yield{target: target, max: inFlight, min: max(1, inFlight/128), log: log}
}

// limit is the bulk lane's in-flight limit at now, in [min, max].
func (y *yield) limit(now time.Time) int {
	y.mu.Lock()
	defer y.mu.Unlock()
	return y.limitLocked(now)
}

func (y *yield) limitLocked(now time.Time) int {
	if y.cut.IsZero() {
		return y.max
	}
	steps := int(now.Sub(y.cut) / regrowEvery)
	if steps >= 31 || y.base<<steps >= y.max {
		if y.yielded {
			y.yielded = false
			y.log.Info().Msg("bulk lane back to all its in-flight sends: express entries no longer wait")
		}
		y.cut = time.Time{}
		return y.max
	}
	return y.base << steps
}

// late records that an express round started waited after its entries
// were written (on time or not).
func (y *yield) late(waited time.Duration, now time.Time) {
	if y.target <= 0 {
		return
	}
	y.mu.Lock()
	defer y.mu.Unlock()
	if waited <= y.target {
		y.onTime = now
		return
	}
	if now.Sub(y.onTime) < cutEvery || now.Sub(y.capped) < cappedFor || now.Sub(y.cut) < cutEvery {
		return
	}
	y.base = max(y.min, y.limitLocked(now)/2)
	y.cut = now
	if !y.yielded && now.Sub(y.logged) >= time.Minute {
		y.yielded, y.logged = true, now
		y.log.Info().Dur("waited", waited).Dur("target", y.target).
			Msg("bulk lane yields in-flight sends to the express lane: express entries wait longer than --express-target (the machine is short of CPU)")
	}
}

// permitWait records that an express send waited this long for its permit.
func (y *yield) permitWait(waited time.Duration, now time.Time) {
	if y.target <= 0 || waited <= y.target {
		return
	}
	y.mu.Lock()
	y.capped = now
	y.mu.Unlock()
}
