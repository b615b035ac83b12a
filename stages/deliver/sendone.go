package deliver

import (
	"context"
	"fmt"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// provider names, for the limiter and metrics.
func providerOf(p push.Platform) string {
	switch p {
	case push.IOS:
		return "apns"
	case push.Android:
		return "fcm"
	default:
		return "none"
	}
}

// sendOne sends to one device (its caller took the in-flight slot and the
// rate-limit permit). mark says the outcome is terminal and is to be marked
// (the caller hands it to the marker); otherwise it is a Retry result for
// the caller to schedule, or an error. now is the chunk's clock, read after
// its previous send; at is the clock after this one (zero when it made no
// request), the next send's now: the clock is read once a send.
func (h *Handler) sendOne(ctx context.Context, l *appLane, lim *limiter, c *campaign, d device, now time.Time, emit emitFunc) (res push.Result, mark bool, at time.Time, err error) {
	if l.sender == nil {
		l.sent[push.Failed].Inc()
		return push.Result{Outcome: push.Failed, Reason: "no sender for platform"}, true, at, nil
	}
	// It may have expired while the send waited for its permits. now is
	// stale by a cancel check: near the expiry the clock is read again, so
	// that no send starts past it, and a send far from it costs no clock
	// read.
	if !c.expires.IsZero() && c.expires.Sub(now) < time.Minute && c.expired(time.Now()) {
		l.expired.Inc()
		return push.Result{Outcome: push.Failed, Reason: ReasonExpired}, true, at, nil
	}
	id := lim.begin(l.provider, c.App)
	res = l.sender.Send(ctx, c.notification(d))
	at = lim.done(ctx, id, l.provider, c.App, res)
	if res.Reason == ReasonNoCredentials {
		// Its app has no credentials for the platform: failed without a
		// request (appsenders.go), so no clock after it and unsent, like a
		// device with no sender, and no request time observed.
		l.sent[push.Failed].Inc()
		return res, true, time.Time{}, nil
	}
	// The request's time: from the limiter's clock at its start when it
	// read one, else from the chunk's (the previous send's end: this
	// send's cancel check and notification are in it, microseconds
	// beside a provider's milliseconds).
	start := now
	if !id.IsZero() {
		start = id
	}
	if at.IsZero() {
		at = time.Now()
	}
	if l.requests != nil {
		l.requests.Observe(at.Sub(start).Seconds())
	}
	if res.Outcome >= push.Sent && res.Outcome <= push.Failed {
		l.sent[res.Outcome].Inc()
	} else {
		h.metrics.sent(l.provider, res.Outcome, l.pl).Inc()
	}
	switch res.Outcome {
	case push.Sent:
	case push.Invalid:
		// The invalidation goes to ingest first: a crash before the mark
		// repeats the send and the (idempotent) event, never loses it.
		if err := h.invalidate(ctx, c.App, d, res, emit); err != nil {
			return res, false, at, err
		}
		at = time.Now() // not the next request's time
	case push.Failed:
		if res.CampaignFatal {
			if err := h.failCampaign(ctx, c, d.platform, res); err != nil {
				return res, false, at, err
			}
			at = time.Now()
		}
	default:
		if ctx.Err() != nil {
			// Cut short by shutdown: the batch stays pending and is
			// redone; do not spend a retry on it.
			return res, false, at, ctx.Err()
		}
		res.Outcome = push.Retry
		return res, false, at, nil
	}
	return res, true, at, nil
}

// counterOf is the campaign counter a terminal outcome adds to.
func counterOf(o push.Outcome) string {
	switch o {
	case push.Sent:
		return pipeline.StatSent
	case push.Invalid:
		return pipeline.StatInvalid
	default:
		return pipeline.StatFailed
	}
}

// invalidate tells ingest that the provider rejected a token as dead, with
// APNs's timestamp when it gave one: ingest applies it only if the device was
// not registered again after that time.
func (h *Handler) invalidate(ctx context.Context, app string, d device, res push.Result, emit emitFunc) error {
	if d.raw {
		return nil // a raw token is not the registry's: rawtokens.go says why
	}
	at := res.InvalidSince
	if at.IsZero() {
		at = time.Now()
	}
	ev := devices.Event{Op: pipeline.OpInvalidate, App: app, Token: d.token, User: d.user, At: at.UnixMicro()}
	switch d.platform {
	case push.IOS:
		ev.Platform = devices.IOS
	case push.Android:
		ev.Platform = devices.Android
	}
	// Tried again while Redis is away: given up on, the batch's retry would
	// send to the dead token again. Ingest applies an event once.
	if err := h.untilRedisBack("invalidation", func() error { return emit(ctx, ev.Message(h.keys)) }); err != nil {
		return fmt.Errorf("emit invalidation: %w", err)
	}
	return nil
}

// failCampaign records that the provider refused what every device of the
// campaign gets (credentials, payload, topic): the campaign fails with the
// reason, its remaining devices are counted failed without being sent, and
// no token is deleted. The first reason wins.
func (h *Handler) failCampaign(ctx context.Context, c *campaign, platform push.Platform, res push.Result) error {
	reason := fmt.Sprintf("%s %d %s", providerOf(platform), res.Status, res.Reason)
	err := h.untilRedisBack("campaign failure", func() error {
		return h.rdb.Do(ctx, h.rdb.B().Hsetnx().Key(h.keys.Campaign(c.ID)).Field(pipeline.CampaignFailed).Value(reason).Build()).Error()
	})
	if err != nil {
		return fmt.Errorf("fail campaign %s: %w", c.ID, err)
	}
	if _, loaded := h.failed.LoadOrStore(c.ID, reason); !loaded {
		h.log.Error().Str("campaign", c.ID).Str("reason", reason).Msg("campaign failed: the provider refuses its requests")
	}
	return nil
}

// campaignFailed returns the reason a campaign failed, or "".
func (h *Handler) campaignFailed(id string) string {
	if v, ok := h.failed.Load(id); ok {
		return v.(string)
	}
	return ""
}
