// Package campaign is the campaign model every role shares: the API and
// `pushpipe send` create campaigns with Create, split and resolve read them
// with Load, and the API, status, dev and bench watch them with Progress.
//
// A campaign lives in PostgreSQL (the campaigns table, the source of truth for
// its content) and in Redis (a hash of campaign-wide facts under the
// campaign's own hash tag, per-partition counters, and the dedupe marks).
package campaign

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Campaign is one notification sent to the union of some channels'
// subscribers.
type Campaign struct {
	ID        string          // idempotency key; generated when empty
	App       string          // the app whose devices receive it
	Channels  []string        // whose subscribers it reaches (each person once)
	Category  string          // users who muted it are skipped; "" = none
	Title     string          //
	Body      string          //
	Data      json.RawMessage // a JSON object of custom keys, or nil
	TTL       time.Duration   // how long providers may hold it; default DefaultTTL
	CreatedAt time.Time       // set by Create
	// Notification is the whole notification object (a push.Content as
	// JSON, validated by the API: api.parseNotification), or nil for a
	// campaign of Title, Body and Data only. Title, Body and Data are its
	// default text and data all the same.
	Notification json.RawMessage

	// SendAt is when a scheduled campaign starts; zero (or a time already
	// past) starts it now. At most MaxSchedule ahead.
	SendAt time.Time
	// RatePerSecond caps this campaign's sends, cluster-wide, under the
	// provider's cap; 0 is the provider's cap alone.
	RatePerSecond int
	// Priority is PriorityNormal (default) or PriorityHigh.
	Priority string
	// State is the lifecycle state kept in PostgreSQL (Load reads it).
	State string
	// Kind is KindCampaign or KindMessage (Load reads it).
	Kind string
}

// Priorities of a campaign.
const (
	PriorityNormal = "normal"
	PriorityHigh   = "high"
)

// Limits of a campaign request.
const (
	DefaultTTL  = 24 * time.Hour
	MaxTTL      = 28 * 24 * time.Hour // FCM keeps a message at most 4 weeks
	MaxID       = 128
	MaxChannels = 100
	// MaxPayload is what either provider takes per notification. Title and
	// body alone over it can never fit; the payload as rendered for each
	// provider is measured by deliver.CheckCampaign.
	MaxPayload = 4096
	// MaxSchedule is how far ahead send_at may be.
	MaxSchedule = 90 * 24 * time.Hour
	// MaxRatePerSecond is the highest cap of a campaign's own: far above
	// any provider's, and within the campaigns table's integer column.
	MaxRatePerSecond = 1_000_000
)

// ErrNotFound is a campaign id that was never created.
var ErrNotFound = errors.New("campaign not found")

// ErrIsMessage is a campaign's operation (progress, cancel) asked of a
// direct message; errors.Is(err, ErrNotFound) holds too.
var ErrIsMessage = fmt.Errorf("%w: a direct message", ErrNotFound)

// ErrIsCampaign is a direct message's progress asked of a campaign's id;
// errors.Is(err, ErrNotFound) holds too.
var ErrIsCampaign = fmt.Errorf("%w: a campaign", ErrNotFound)

// ErrConflict is a campaign id reused for different content: an idempotency
// key must always name the same campaign.
var ErrConflict = errors.New("campaign id already used for a different campaign")

// ErrOtherKind is a create given the id of the other kind of record (a
// direct message's id for a campaign, a campaign's for a message): the two
// share one id space, so errors.Is(err, ErrConflict) holds too, but it is
// not a retry whose content changed, which is what ErrConflict tells.
var ErrOtherKind error = otherKind{}

type otherKind struct{}

func (otherKind) Error() string {
	return "campaigns and direct messages share one id space; use another id"
}

func (otherKind) Is(target error) bool { return target == ErrConflict }

// ValidationError is a request that can never succeed; its message names the
// field and what is wrong.
type ValidationError struct{ Msg string }

func (e *ValidationError) Error() string { return e.Msg }

func invalid(format string, args ...any) error {
	return &ValidationError{Msg: fmt.Sprintf(format, args...)}
}

// Normalize fills the defaults (id, TTL), drops repeated channels and
// validates every field. It returns a *ValidationError naming the field.
func (c *Campaign) Normalize() error {
	if len(c.Channels) == 0 {
		return invalid(`channels: at least one channel is required, e.g. ["breaking-news"]`)
	}
	if len(c.Channels) > MaxChannels {
		return invalid("channels: at most %d channels per campaign, got %d", MaxChannels, len(c.Channels))
	}
	var uniq []string
	for i, ch := range c.Channels {
		// The rules of channel names in subscriptions: a range id is
		// channel/index, so a '/' can never be part of one.
		if err := devices.ValidateName(fmt.Sprintf("channels[%d]", i), ch); err != nil {
			return &ValidationError{Msg: err.Error()}
		}
		if !slices.Contains(uniq, ch) {
			uniq = append(uniq, ch)
		}
	}
	c.Channels = uniq
	return c.normalizeContent()
}

// normalizeContent fills the defaults and validates what a campaign and a
// message share: id, app, category, notification and TTL.
func (c *Campaign) normalizeContent() error {
	if c.ID == "" {
		c.ID = NewID()
	}
	if err := ValidateID(c.ID); err != nil {
		return err
	}
	if err := devices.ValidateApp(c.App); err != nil {
		return &ValidationError{Msg: err.Error()}
	}
	if c.Category != "" {
		if err := devices.ValidateName("category", c.Category); err != nil {
			return &ValidationError{Msg: err.Error()}
		}
	}
	if c.Title == "" && c.Body == "" && len(c.Notification) == 0 { // a silent push has neither
		return invalid("notification: a title or a body is required")
	}
	for _, f := range []struct{ name, text string }{{"notification.title", c.Title}, {"notification.body", c.Body}} {
		if err := validText(f.name, f.text); err != nil {
			return err
		}
	}
	if n := len(c.Title) + len(c.Body); n > MaxPayload {
		return invalid("notification: title and body are %d bytes together; at most %d fit a push payload", n, MaxPayload)
	}
	if len(c.Data) > 0 {
		if err := validData(c.Data); err != nil {
			return err
		}
	}
	switch {
	case c.TTL == 0:
		c.TTL = DefaultTTL
	case c.TTL < time.Second || c.TTL > MaxTTL:
		return invalid("ttl_seconds: must be between 1 and %d (28 days), got %d", int(MaxTTL.Seconds()), int64(c.TTL.Seconds()))
	}
	return c.normalizeLifecycle(time.Now())
}

// ValidateID accepts 1–128 characters of [A-Za-z0-9._-], but not "." or
// "..": ids become part of Redis key names and hash tags, so braces, colons
// and spaces are out, and of the URL GET /v1/campaigns/{id}, where "." and
// ".." are path steps that name no campaign.
func ValidateID(id string) error {
	if id == "" || len(id) > MaxID {
		return invalid("id: must be 1–%d characters, got %d", MaxID, len(id))
	}
	if id == "." || id == ".." {
		return invalid("id: %q is a path step, not an id: use letters or digits too", id)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return invalid("id: only letters, digits, '.', '_' and '-' are allowed; %s", devices.Char(id, i))
		}
	}
	return nil
}

func idChar(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
}

// NewID returns a fresh campaign id: the creation time in hex (ids sort by
// age) and 64 random bits.
func NewID() string {
	var r [8]byte
	rand.Read(r[:])
	return strconv.FormatInt(time.Now().UnixMilli(), 16) + "-" + hex.EncodeToString(r[:])
}

// Lane is the lane the campaign's users ride from dedupe on.
func (c Campaign) Lane() pipeline.Lane {
	l, _ := pipeline.LaneOf(c.Priority, pipeline.PriorityNormal)
	return l
}

// ExpiresAt is when the campaign's notification expires: providers drop it
// then, and nothing is sent for it any more.
// The TTL counts from the start: a scheduled campaign's from its send_at.
func (c Campaign) ExpiresAt() time.Time {
	start := c.CreatedAt
	if c.SendAt.After(start) {
		start = c.SendAt
	}
	return start.Add(c.TTL)
}
