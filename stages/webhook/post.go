package webhook

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/httpx"
)

// post delivers payload, a request body of n events, signed afresh per
// attempt, retried up to Attempts times with exponential backoff and
// jitter, waiting at least a Retry-After. Every attempt takes its events
// from the rate cap: the receiver sees them whether it answers 2xx or not.
//
// A pause the receiver asked for (quietFor), of this process or of another
// of the group (pause.go), may be as long as
// RetryAfterMax, minutes: the handler waits it out holding its batch,
// whose lease the runner's keep renews meanwhile (a slow handler's batch
// is never claimed from a live process), and a stop ends the wait at
// once, leaving the batch pending with its delivery given back
// (errStopping).
func (h *Handler) post(ctx context.Context, b *pipeline.Batch, payload []byte, n int) error {
	var last error
	for attempt := 1; ; attempt++ {
		if err := h.waitQuiet(ctx, b); err != nil {
			return err
		}
		if h.cap.Max() > 0 {
			if err := h.take(ctx, b, n); err != nil {
				return err
			}
			// Again: under a low --rate, take waits for most of a second,
			// and another handler's answer may have asked for a pause
			// meanwhile. The events taken are spent; the receiver's pause
			// comes first. (Without a cap take returns at once: one read
			// of the group's pause per POST is enough.)
			if err := h.waitQuiet(ctx, b); err != nil {
				return err
			}
		}
		if err := held(ctx, b); err != nil {
			return err
		}
		if stopping(b) {
			return errStopping
		}
		still := moving(b)
		code, retryAfter, err := h.postOnce(ctx, payload)
		still()
		h.metrics.posts.WithLabelValues(strconv.Itoa(code)).Inc()
		if err == nil {
			return nil
		}
		last = err
		wait := h.backoff(attempt)
		// Before the attempts are counted: the last attempt's pause holds
		// back the process's other POSTs as well (DESIGN: Retry-After
		// honoured). It was dropped, and the next batch was POSTed at once
		// into the receiver that had asked for a pause; under --attempts
		// 1, every time.
		switch {
		case retryAfter > 0:
			// Whatever the status: RFC 9110 has Retry-After say how long
			// to wait before the next request, on any answer.
			h.quietFor(retryAfter)
		case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
			// Too many, or overloaded, without saying for how long (or
			// saying it unreadably: "soon", -1): the backoff, for every
			// POST of the process. Only this handler waited, the others
			// POSTing on into the receiver that had just said it could
			// take no more, and after the last attempt none did.
			h.quietFor(wait)
		}
		if attempt >= h.cfg.Attempts {
			tries := "attempts"
			if attempt == 1 {
				tries = "attempt"
			}
			return fmt.Errorf("POST %s: %d %s, last: %w", h.safeURL, attempt, tries, last)
		}
		still = moving(b)
		err = sleep(ctx, b, wait)
		still()
		if err != nil {
			return err
		}
	}
}

// moving tells the runner the batch moves (Batch.Progress every
// pausedProgress) until the returned func is called: while a POST is in
// flight, up to --timeout, and while a failed one backs off, up to
// --retry-max. Both are the pace the operator set, as a pause and the rate
// cap are (waitQuiet, take), but the batch moved only between POSTs: a
// receiver taking a minute per POST under --timeout 90s, or --retry-max
// 2m, read stuck past StuckAfter (a minute by default), and an operator
// restarted a webhook that worked. (The lease is kept by the runner
// meanwhile, whatever the handler does: only status misread it.) Not
// while held waits for the lease: a batch whose lease ran out does not
// move.
func moving(b *pipeline.Batch) (stop func()) {
	done := make(chan struct{})
	go func() {
		tick := time.NewTicker(pausedProgress)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				b.Progress()
			}
		}
	}()
	return func() { close(done) }
}

// take takes n events from the rate cap, waiting no longer than the batch
// is this process's to deliver: a stop or the batch lost ends the wait, as
// they end sleep. Under a low --rate a handler waits here most of the
// time, and a stop waited out ShutdownTimeout, the context then cut, so
// the runner could ack none of what the batch had delivered. The batch
// moves meanwhile (Batch.Progress every pausedProgress), as in a pause:
// the pace is the operator's --rate, and a batch of many POSTs under a
// low one read stuck past StuckAfter.
func (h *Handler) take(ctx context.Context, b *pipeline.Batch, n int) error {
	if h.cap.Max() == 0 {
		return nil // no cap: Take returns at once
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer cancel()
		tick := time.NewTicker(pausedProgress)
		defer tick.Stop()
		for {
			select {
			case <-b.Stopping():
				return
			case <-b.Lost():
				return
			case <-tctx.Done():
				return
			case <-tick.C:
				b.Progress()
			}
		}
	}()
	err := h.cap.Take(tctx, n)
	switch {
	case err == nil || ctx.Err() != nil:
		return err
	case b.IsLost():
		return errLost
	case stopping(b):
		return errStopping
	}
	return err
}

// quietFor holds back every POST of this process for d from now, at most
// RetryAfterMax, unless it is held back longer already. A receiver's
// Retry-After says it wants no requests for a while: the other handlers'
// batches would hit it too. A pause longer than RetryMax that starts
// while none runs is logged, once however many handlers were answered:
// nothing flows for minutes maybe, and the operator reads why. (Shorter
// ones are not: a receiver pacing its callbacks at Retry-After: 1 would
// log a line a second.)
//
// It holds back the group's other processes too (sharePause): the pause
// is the receiver's, asked of all of them. Only when it extends this
// process's: a pause this process has already is the group's already (it
// was shared when asked, or read from the group's).
func (h *Handler) quietFor(d time.Duration) {
	asked := d
	d = min(d, h.cfg.RetryAfterMax)
	now := time.Now()
	was, ok := h.extendQuiet(now.Add(d).UnixNano())
	if !ok {
		return
	}
	h.sharePause(d)
	if was < now.UnixNano() && asked > h.cfg.RetryMax {
		if asked > d {
			h.log.Warn().Str("asked", asked.String()).Str("for", d.String()).
				Msgf("webhook receiver asked for a pause longer than %s; no POST of this process for that long, then the receiver is asked again",
					h.cfg.flag("retry-after-max"))
		} else {
			h.log.Info().Str("for", d.Round(time.Millisecond).String()).
				Msg("webhook receiver asked for a pause; no POST of this process until it is over (the batches in hand wait, kept)")
		}
	}
}

// extendQuiet moves the end of this process's pause to until (Unix ns) if
// that is later, saying what it was before and whether it moved: of two
// answers racing, the longer pause wins, and only the one that extended it
// shares and logs it.
func (h *Handler) extendQuiet(until int64) (was int64, extended bool) {
	for {
		cur := h.quiet.Load()
		if cur >= until {
			return cur, false
		}
		if h.quiet.CompareAndSwap(cur, until) {
			return cur, true
		}
	}
}

// waitQuiet waits until the receiver's last Retry-After is over: this
// process's, then the group's (sharedPause: another process's answer, or
// one given before this process started), which it then keeps as its own
// (joinPause), reading the group's again only once it is over. The batch
// moves meanwhile, as status reads it (Batch.Progress every
// pausedProgress): the pause is the receiver's choice, minutes maybe. It
// read stuck past Options.StuckAfter (a minute or two).
func (h *Handler) waitQuiet(ctx context.Context, b *pipeline.Batch) error {
	for {
		d := time.Until(time.Unix(0, h.quiet.Load()))
		if d <= 0 {
			if d = h.sharedPause(ctx); d <= 0 {
				return ctx.Err()
			}
			h.joinPause(d)
		}
		b.Progress()
		if err := sleep(ctx, b, min(d, pausedProgress)); err != nil {
			return err
		}
	}
}

// joinPause makes the group's pause, d from now, this process's: its
// POSTs wait it out with no more round trips. A long one starting is
// logged, as quietFor logs its own.
func (h *Handler) joinPause(d time.Duration) {
	now := time.Now()
	if was, ok := h.extendQuiet(now.Add(d).UnixNano()); ok && was < now.UnixNano() && d > h.cfg.RetryMax {
		h.log.Info().Str("for", d.Round(time.Millisecond).String()).
			Msg("webhook receiver asked another process of the group for a pause; no POST of this process until it is over (the batches in hand wait, kept)")
	}
}

// pausedProgress is how often a batch waiting out a pause says it moves:
// far below any StuckAfter, and a timer's wake-up a handler is cheap.
const pausedProgress = 250 * time.Millisecond

// sleep waits d, or less when the process stops or the batch is taken.
func sleep(ctx context.Context, b *pipeline.Batch, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-b.Lost():
		return errLost
	case <-b.Stopping():
		return errStopping // no POST would follow: see stopping
	case <-t.C:
		return nil
	}
}

// stopping reports whether the process is shutting down
// (pipeline.Batch.Stopping), asked right before each POST: it starts no
// more, as deliver starts no more sends. The entries with an event not yet
// delivered stay pending and are POSTed by whoever claims them; those
// delivered are acked (leavePending). Before, a stopping process POSTed
// the rest of its batches, hundreds of requests at a slow receiver, until
// ShutdownTimeout cut them off, and then they were POSTed again all the
// same.
func stopping(b *pipeline.Batch) bool {
	select {
	case <-b.Stopping():
		return true
	default:
		return false
	}
}

// held waits, right before a POST, while the batch's lease has run out
// (pipeline.Batch.WaitHeld): Redis was away, or this process stalled, for
// most of ClaimIdle, and another consumer may have claimed the entries and
// POST their events now. It ends with the batch lost (errLost), the
// process stopping (errStopping) or ctx: the entries stay pending.
func held(ctx context.Context, b *pipeline.Batch) error {
	switch {
	case b.WaitHeld(ctx):
		return nil
	case b.IsLost():
		return errLost
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return errStopping
}

// postOnce makes one request; an error says what the receiver answered
// (never the URL's credentials).
func (h *Handler) postOnce(ctx context.Context, payload []byte) (code int, retryAfter time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(payload))
	if err != nil {
		return 0, 0, errors.New("cannot build a request for the webhook URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(h.cfg.Secrets, time.Now(), payload))
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL may hold credentials
		}
		if hint := h.unansweredHint(ctx, err); hint != "" {
			return 0, 0, fmt.Errorf("no answer: %w: %s", err, hint)
		}
		return 0, 0, fmt.Errorf("no answer: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		resp.Body.Close()
		return resp.StatusCode, 0, nil
	}
	// A refusal's body is what the receiver says is wrong: kept, its
	// start, for the error (excerpt). Read as far as the discard went, so
	// the connection is reused as before.
	head := make([]byte, 4<<10)
	n, _ := io.ReadFull(resp.Body, head)
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10-int64(n)))
	resp.Body.Close()
	answer := fmt.Sprintf("answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	// Retries of a refusal only fill the DLQ: say what the operator fixes.
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden: // most often a receiver checking another secret
		answer += ": the receiver refused the request; check that it verifies Pushpipe-Signature with a line of " +
			h.cfg.flag("secret-file") + ", the credentials it wants in the URL, and that this host's clock is within its tolerance " +
			"of the receiver's (t= is this host's time)"
	case http.StatusRequestEntityTooLarge:
		answer += ": the receiver takes smaller bodies; lower " + h.cfg.flag("batch") + " (events per POST)"
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		answer += h.redirectHint(req, resp)
	}
	// Last: dlq list cuts a long reason in its middle and keeps its end.
	// Not of a redirect: its body is a link to where redirectHint says.
	if said := excerpt(head[:n], h.cfg.URL); said != "" && resp.StatusCode/100 != 3 {
		answer += pipeline.ReceiverSaid + said
	}
	return resp.StatusCode, httpx.RetryAfter(resp.Header, time.Now()), errors.New(answer)
}

// backoff is the wait after attempt n: a random time in [d/2, d], d =
// min(RetryMax, RetryBase·2^(n-1)), so retries of many handlers spread out.
func (h *Handler) backoff(n int) time.Duration {
	d := h.cfg.RetryMax
	if n < 30 {
		d = min(d, h.cfg.RetryBase<<(n-1))
	}
	return d/2 + rand.N(d/2+1)
}

// unansweredHint says what to do about a POST that got no answer, where the
// error alone does not: a certificate this process does not trust (a
// receiver's own CA, a self-signed certificate) or a receiver slower than
// --timeout. "" for the rest, which say it themselves (connection refused).
func (h *Handler) unansweredHint(ctx context.Context, err error) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &unknownCA):
		return "the receiver's certificate is not signed by a CA this process trusts; " +
			"give the CA that signed it (PEM) in SSL_CERT_FILE (or a directory of them in SSL_CERT_DIR)"
	case errors.As(err, &hostname):
		return "the receiver's certificate does not name the URL's host; use a host it names, or a certificate naming this one"
	case errors.As(err, &invalid):
		return "the receiver's certificate is not valid (expired, or not for a server); renew it"
	case ctx.Err() == nil && errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("the receiver answered nothing within %s %v; have it answer 2xx before it processes the events, or raise %s",
			h.cfg.flag("timeout"), h.cfg.Timeout, h.cfg.flag("timeout"))
	}
	return ""
}

// redirectHint says where a receiver redirects the POST, which is not
// followed (a 301, 302 or 303 would lose the body): the operator gives that
// URL instead. It is shown as SafeURL shows URLs, and as "the same path"
// when only the scheme or host changes (http to https, say), the path and
// query being what the operator already knows and the log must not show.
func (h *Handler) redirectHint(req *http.Request, resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return ": a redirect without a Location; redirects are not followed, fix the URL"
	}
	to := SafeURL(loc.String())
	if loc.RequestURI() == req.URL.RequestURI() {
		to = loc.Scheme + "://" + loc.Host + " (the same path)"
	}
	return ": the receiver redirects to " + to + "; redirects are not followed (the POST's body would be lost): give that URL as " + h.cfg.flag("url")
}
