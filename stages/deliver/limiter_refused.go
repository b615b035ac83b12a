package deliver

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// When the provider refuses a send for the app's rate (push.Result's
// Throttled: FCM's QUOTA_EXCEEDED), its own limit is lower than --tps, or
// counted in a way the allowance does not cover. Sending on at the same rate would have a
// share of every second refused and retried (hammering it); instead the cap
// of that provider+app backs off cluster-wide, AIMD-style as TCP does with
// its window:
//
//   - a refusal lowers the cap to refusedBeta of what it was, and no slot
//     is granted before the provider's Retry-After (at most maxPause);
//     refusals within refusedHold after that are of sends made before it
//     and change nothing;
//   - then, once the pause is over, the cap comes back by itself: quickly
//     (recoverFast × tps a second) up to recoverKnee of the cap that was
//     refused, then slowly (recoverSlow × tps a second) up to --tps, so
//     that it settles just under the provider's limit and probes above it
//     only every minute or two (a few dozen refusals and a pause each
//     time).
//
// The first refusal only tells that the provider's limit is under --tps,
// maybe far under: the quick climb then usually meets it again within a
// couple of seconds, and that second refusal sets a ceiling close to it
// (a provider counting in one-second windows refuses about a second after
// the rate went over: the slower the climb, the closer the ceiling). A
// refusal that was not about the rate costs a cap that is back at 85% of
// --tps within seconds and whole again within five minutes.
//
// APNs's 429 is not one: it is about one device token that gets too many
// notifications in a row (Apple publishes no rate limit of its own), so it
// backs off that device (its retry) and leaves the cap alone. A chat room
// whose members' phones each get a push per message meets it again and
// again; lowering the app's cap for each would slow every other send.
const (
	refusedBeta = "0.7"
	refusedHold = 500 * time.Millisecond // longer than ahead plus a send
	maxPause    = time.Minute
	recoverKnee = "0.85"
	recoverFast = "0.1"
	recoverSlow = "0.0005"
)

// refused backs the cap of b off after a Throttled answer with retryAfter.
func (l *limiter) refused(ctx context.Context, b *bucket, retryAfter time.Duration) {
	now := time.Now()
	b.mu.Lock()
	if now.Before(b.holdUntil) {
		b.mu.Unlock()
		return
	}
	// The permits in hand were granted at the rate the provider refuses.
	// The other refusals of this process in the meantime are the same event:
	// one Redis call for all of them.
	b.grants = nil
	b.holdUntil = now.Add(refusedHold)
	b.mu.Unlock()

	if b.lend != "" && !l.lender.off(b.app) {
		// The provider's limit is one for both lanes: the lender's cap
		// backs off too, or the permits taken from it would go on
		// meeting the refusals at its rate.
		ltps, _, _ := l.lender.rate(b.app)
		l.lower(ctx, b.lend, ltps, retryAfter)
	}
	tps, _, _ := l.rate(b.app)
	res, err := l.lower(ctx, b.key, tps, retryAfter)
	if err != nil {
		return
	}
	pause := time.Duration(res[2]) * time.Microsecond
	b.mu.Lock()
	b.notBefore = later(b.notBefore, now.Add(pause))
	b.holdUntil = later(b.holdUntil, now.Add(pause+refusedHold))
	b.mu.Unlock()
	if l.caps != nil {
		l.caps.WithLabelValues(b.provider, b.app, l.lane.String()).Set(float64(res[1]))
	}
	if res[0] == 1 {
		l.log.Warn().Str("key", b.key).Int64("cap", res[1]).Dur("pause", pause).
			Msg("the provider refused sends over its rate: cap lowered for every deliver process")
	}
}

// lower runs refusedScript on key, whose cap is tps: {1 if it lowered the
// cap, the cap, µs of pause}.
func (l *limiter) lower(ctx context.Context, key string, tps int, retryAfter time.Duration) ([]int64, error) {
	res, err := refusedScript.Exec(ctx, l.rdb, []string{key}, []string{
		strconv.Itoa(tps), strconv.FormatInt(retryAfter.Microseconds(), 10),
		strconv.FormatInt(maxPause.Microseconds(), 10), refusedBeta,
		strconv.FormatInt(refusedHold.Microseconds(), 10), recoverKnee, recoverFast, recoverSlow,
	}).AsIntSlice()
	if err == nil && len(res) != 3 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil && ctx.Err() == nil {
		l.log.Warn().Err(err).Str("key", key).Msg("could not lower the rate cap after a refusal")
	}
	return res, err
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
