// Package webhook is the results stage: it reads the results stream (a
// result event per device that reached a terminal state, written by
// deliver) and POSTs the events in signed batches to the operator's URL,
// at least once, no faster than a cluster-wide cap in events/s.
package webhook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// DefaultBatch is the most events per POST unless Config.Batch says.
const DefaultBatch = 500

// DefaultGroup is the consumer group of a deployment's first receiver, the
// stage's name as for every stage.
const DefaultGroup = "webhook"

// groupName is what a --group may be: it names a Redis consumer group and
// shows in status and logs, so a plain word.
var groupName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidGroupName is whether name may be a receiver's --group: the operator
// tools that take a group (results retire, dlq --group) refuse another
// before they dial Redis, where no group of that name can be.
func ValidGroupName(name string) bool { return groupName.MatchString(name) }

// MinRetry is the shortest RetryBase and RetryMax Validate takes: at 1ns a
// failing receiver was POSTed to again without a pause, Attempts times per
// delivery. 10ms is the stage's own tests' backoff; the default is 250ms.
const MinRetry = 10 * time.Millisecond

// DefaultRetryAfterMax is the longest Retry-After honoured unless
// Config.RetryAfterMax says: long enough for a receiver's own outage or
// quota window, short enough that a Retry-After of a day (a
// misconfigured receiver) holds nothing back for more than minutes before
// the receiver is asked again.
const DefaultRetryAfterMax = 10 * time.Minute

// MaxRetryAfterMax bounds RetryAfterMax: a day, past any receiver's pause
// worth waiting out in one go (and far inside time.Duration's range).
const MaxRetryAfterMax = 24 * time.Hour

// Config is everything the stage needs.
type Config struct {
	Redis rueidis.Client
	Keys  pipeline.Keys

	// Group is the consumer group, one per receiver (--group): every group
	// reads every event, and the processes of one group share its events
	// (replicas of one receiver). Its --rate cap is its own. Default
	// DefaultGroup.
	Group   string
	URL     string   // http(s); credentials in it go as Basic auth; logs show it as SafeURL
	Secrets [][]byte // every secret signs every POST (LoadSecrets)
	// Batch is the most events per POST (--batch); default DefaultBatch.
	// The runner's reads are entries, each holding many devices' events:
	// a read is POSTed in as many requests as it takes.
	Batch int
	// Rate caps the events POSTed per second across every webhook process;
	// 0 caps nothing.
	Rate int
	// Outcomes, when set, are the only outcomes POSTed; the others are
	// acked unsent (--filter outcome=failed,invalid).
	Outcomes []string
	// Timeout bounds one POST; default 10s. For this and the settings
	// below, New takes zero for the default; Validate refuses it.
	Timeout time.Duration
	// Attempts is how many POSTs one delivery of a batch makes before it is
	// left for redelivery (and, after --max-deliveries, the DLQ); default 5.
	Attempts int
	// RetryBase and RetryMax shape the backoff: attempt n waits a random
	// time in [d/2, d], d = min(RetryMax, RetryBase·2^(n-1)). Defaults
	// 250ms and 30s; at least MinRetry.
	RetryBase, RetryMax time.Duration
	// RetryAfterMax is the longest pause a receiver's Retry-After gets
	// (--retry-after-max): every POST of the group (of each of its
	// processes, pause.go) is held back for it, whatever the answer's
	// status, and the group's pause is cut to the RetryAfterMax of the
	// process answered. It was RetryMax: a receiver asking for
	// 120 s got the next POST after 30 s (issue #18, results must flow at
	// the rate the receiver chooses). A longer Retry-After (a day) is
	// honoured for RetryAfterMax, and the POST after it asks the receiver
	// again. Default DefaultRetryAfterMax; from RetryMax to
	// MaxRetryAfterMax.
	RetryAfterMax time.Duration

	// FlagPrefix is what the stage's own flags begin with where it runs:
	// "webhook-" under `pushpipe all`, so that the advice in its logs and
	// dead letters names --webhook-batch, a flag the operator has.
	FlagPrefix string

	Log     zerolog.Logger
	Metrics prometheus.Registerer // nil registers nothing
}

// flag is the name of the stage's own flag name as the operator gives it.
func (c *Config) flag(name string) string { return "--" + c.FlagPrefix + name }

// defaults fills the settings a caller left at zero. Only zero: a negative
// value is a mistake, and Validate refuses it.
func (c *Config) defaults() {
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Attempts == 0 {
		c.Attempts = 5
	}
	if c.RetryBase == 0 {
		c.RetryBase = 250 * time.Millisecond
	}
	if c.RetryMax == 0 {
		c.RetryMax = 30 * time.Second
	}
	if c.RetryAfterMax == 0 {
		c.RetryAfterMax = max(DefaultRetryAfterMax, c.RetryMax)
	}
}

// Validate refuses settings the stage cannot run with, before anything
// connects: `pushpipe webhook` and `pushpipe all` call it on their flags at
// parse time, so a typo is named at once, not after Redis answers. It fills
// no defaults (New does, for zeros): every value is taken as given, so a
// zero --timeout is refused, not replaced. Reading the secret file is
// LoadSecrets's (New refuses none), Redis New's; a file whose secrets are
// all short is refused here (strongSecret).
func (c Config) Validate() error {
	var errs []error
	if err := c.strongSecret(); err != nil {
		errs = append(errs, err)
	}
	if err := CheckURL(c.URL); err != nil {
		errs = append(errs, err)
	}
	if c.Group != "" && !groupName.MatchString(c.Group) {
		errs = append(errs, fmt.Errorf("--group must be a word of letters, digits, '.', '_' or '-' (at most 64), such as analytics, got %q", c.Group))
	}
	if c.Batch <= 0 {
		errs = append(errs, fmt.Errorf("--batch must be at least 1 event per POST, got %d", c.Batch))
	}
	if c.Rate < 0 {
		errs = append(errs, fmt.Errorf("--rate must not be negative (0 caps nothing), got %d", c.Rate))
	}
	if c.Attempts <= 0 {
		errs = append(errs, fmt.Errorf("--attempts must be at least 1 POST per delivery, got %d", c.Attempts))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--timeout must be a positive duration such as 10s, got %v", c.Timeout))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--retry-base", c.RetryBase}, {"--retry-max", c.RetryMax}} {
		if d.v < MinRetry {
			errs = append(errs, fmt.Errorf("%s must be %v or more, such as 250ms (a failed POST waits half of it or more before the next), got %v",
				d.flag, MinRetry, d.v))
		}
	}
	if c.RetryBase >= MinRetry && c.RetryMax >= MinRetry && c.RetryMax < c.RetryBase {
		errs = append(errs, fmt.Errorf("--retry-max (%v) is shorter than --retry-base (%v)", c.RetryMax, c.RetryBase))
	}
	switch {
	case c.RetryAfterMax == 0:
		// Not given: New takes DefaultRetryAfterMax, or RetryMax if longer,
		// so a deployment's long --retry-max still starts after an upgrade.
	case c.RetryAfterMax > MaxRetryAfterMax:
		errs = append(errs, fmt.Errorf("--retry-after-max must be %v or less, got %v", MaxRetryAfterMax, c.RetryAfterMax))
	case c.RetryAfterMax < c.RetryMax:
		// A receiver's Retry-After would be honoured for less than a
		// failed POST's own backoff.
		errs = append(errs, fmt.Errorf("--retry-after-max (%v) is shorter than --retry-max (%v): a receiver's Retry-After would be cut below the backoff",
			c.RetryAfterMax, c.RetryMax))
	}
	for _, o := range c.Outcomes {
		switch o {
		case pipeline.OutcomeSent, pipeline.OutcomeFailed, pipeline.OutcomeInvalid:
		default:
			errs = append(errs, fmt.Errorf("--filter: outcome %q is not sent, failed or invalid", o))
		}
	}
	return errors.Join(errs...)
}

// strongSecret refuses secrets of which none has MinSecret characters. A
// signature is HMAC-SHA256(secret, "t.body"): from one signed POST (a
// receiver's log, a proxy, a plain-http hop) a short secret is found by
// trying, offline, where nothing slows the guesser, and then anyone signs
// events the receiver acts on (an "invalid" one deletes a device's token).
// It was only warned about. One short secret beside a long one still starts,
// with New's warning: that is a rotation away from it under way (every line
// signs each POST), which a refusal would block.
func (c Config) strongSecret() error {
	if len(c.Secrets) == 0 {
		return nil // New says there is none
	}
	for _, s := range c.Secrets {
		if len(s) >= MinSecret {
			return nil
		}
	}
	return fmt.Errorf("%s: every secret in it is shorter than %d characters, short enough to guess from one signed POST "+
		"(whoever sees one could then sign events of their own); add a line with a new secret (openssl rand -hex 32) and start again: "+
		"every line signs each POST, so the receiver keeps verifying with the old one until you switch it to the new; then remove the short line",
		c.flag("secret-file"), MinSecret)
}

// CheckURL refuses a webhook URL that is not absolute http(s); the error
// never repeats the URL (it may hold credentials).
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("webhook URL must be http:// or https:// with a host, e.g. https://hooks.example.com/pushpipe (check --url or PUSHPIPE_WEBHOOK_URL; not repeated here: it may hold credentials)")
	}
	return nil
}

// SafeURL is the URL as logs and dead letters show it: scheme, host and
// port, and of the rest only that there is one and its fingerprint. A
// hook's path and query are often its secret (Slack's
// /services/T…/B…/TOKEN), so none of them is shown, and neither are
// credentials. Two hooks on one host are told apart by the fingerprint:
// the first 8 hex digits of the SHA-256 of the path and query as sent
// (`printf %s /services/T0/B0/TOKEN | sha256sum`), which says nothing of a
// token the reader does not already hold.
func SafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	safe := u.Scheme + "://" + u.Host
	rest := u.RequestURI()
	if rest == "/" {
		return safe + rest // nothing to hide (or tell apart)
	}
	sum := sha256.Sum256([]byte(rest))
	return safe + "/…(sha256:" + hex.EncodeToString(sum[:4]) + ")"
}

// LoadSecrets reads a secret file: one secret a line, blank lines ignored.
// Several lines are the secrets of a rotation: every one signs each POST.
func LoadSecrets(path string) ([][]byte, error) {
	if path == "" {
		// What to put in it, as the receiver needs the same: "give
		// --secret-file" alone left a newcomer to guess a format and a length.
		return nil, errors.New("no secret file: give --secret-file, a file holding the secret your receiver verifies signatures with " +
			"(make one: openssl rand -hex 32 > secret.txt)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		// The path is in err; say what the file is for.
		return nil, fmt.Errorf("--secret-file: %w: give a file holding the secret your receiver verifies signatures with, one a line", err)
	}
	// Split, not a bufio.Scanner: its 64 KiB line limit stopped the read
	// at a longer line, silently signing with only the secrets above it
	// (or refusing the file as empty).
	var out [][]byte
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			out = append(out, bytes.Clone(line))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("secret file %s holds no secret: write one a line (openssl rand -hex 32 >> %s)", path, path)
	}
	return out, nil
}
