package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-isatty"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// SendCmd creates a campaign, exactly as POST /v1/campaigns does, or with
// --user a direct message, exactly as POST /v1/messages does.
type SendCmd struct {
	App      string   `required:"" help:"The app whose devices receive it: one the API knows (its --apps file, given here as --apps, else the apps of PUSHPIPE_APP_KEYS), as the API refuses others."`
	Apps     string   `name:"apps" placeholder:"FILE" help:"The API's apps file: only its apps may be sent to, as with the API's --apps (default: the apps of PUSHPIPE_APP_KEYS; with neither, any)."`
	Channels []string `name:"channel" xor:"to" required:"" sep:"none" help:"A channel whose subscribers receive it (repeat for several; each person gets it once)."`
	Users    []int64  `name:"user" xor:"to" required:"" help:"A user who receives it as a direct message (repeat or comma-separate for several, up to 10,000)."`
	Tokens   []string `name:"token" xor:"to" required:"" sep:"none" placeholder:"PLATFORM:TOKEN" help:"A device outside the registry that receives it as a direct message: ios:HEX or android:FCM_TOKEN (repeat for several, up to 1,000)."`
	Category string   `help:"The campaign's category: users who muted it are skipped."`
	Title    string   `help:"Notification title."`
	Body     string   `help:"Notification body."`
	Data     string   `placeholder:"JSON" help:"Custom keys, a JSON object (APNs gets the values as they are, FCM as strings)."`
	// The rest of the notification object (DESIGN, "The notification
	// object"), checked by the API's own parser.
	Subtitle   string            `help:"Notification subtitle (iOS)."`
	Badge      *int              `placeholder:"N" help:"The app icon's count (0 clears it)."`
	Sound      string            `placeholder:"NAME" help:"A sound file of the app, or \"default\"."`
	Image      string            `placeholder:"URL" help:"An https:// image shown with the notification."`
	ThreadID   string            `name:"thread-id" help:"Groups notifications on iOS."`
	CollapseID string            `name:"collapse-id" help:"Replaces an earlier notification with the same id on the phone (default: the campaign or message id)."`
	Silent     bool              `help:"A background push: no text, sound or badge; it wakes the app with --data."`
	Localized  map[string]string `mapsep:"none" placeholder:"TAG=JSON" help:"The text for devices of a language, e.g. 'ko={\"title\":\"안녕\"}' (repeat for several)."`
	ID         string            `name:"id" help:"Idempotency key: sending the same id again sends nothing new (default: a fresh id)."`
	TTL        time.Duration     `name:"ttl" default:"24h" help:"How long the notification is worth sending, from its start (--send-at, else now): providers drop it then, and nothing is sent after it."`
	DBConns    int32             `name:"db-conns" default:"2" help:"PostgreSQL connections."`
	// The API's "allow_empty".
	AllowEmpty bool `name:"allow-empty" help:"Create it even if the app has no devices or a channel no subscribers (not with --user or --token)."`

	SendAt   string `name:"send-at" placeholder:"TIME" help:"Start then (RFC 3339, or from now: +10m, in 2h; at most 90 days ahead; not past, unless --id names a campaign already created: a retry) instead of now (not with --user or --token)."`
	Rate     int    `name:"rate-per-second" help:"This campaign's own cap, cluster-wide, under the provider's (0: none; not with --user or --token)."`
	Priority string `placeholder:"normal|high" help:"high rides the express lane, normal the bulk one (default: normal for a campaign, high for a message)."`

	Wait bool `help:"Then follow it to the end: a progress bar on stderr, the summary, and the exit status: 0 when it is done (some devices failing is normal), 1 when it failed or was canceled, 3 when it is done but sent nothing, every device it tried having failed, 4 when it is done but sent nothing because people had no device of the app (an unknown user id: register a device first). Everyone muted is 0. Ctrl-C stops the following, not the sending (exit 0)."`

	sendAt time.Time
	tokens []campaign.Token  // Tokens, parsed
	camp   campaign.Campaign // what Validate built: a campaign (--channel)
	msg    campaign.Message  // or a direct message (--user, --token)
}

// Validate checks every flag before anything is dialled, and says every
// problem at once (errors.Join): with Redis down, `--badge -1` answered
// with Redis's error, and the badge was refused only once Redis was back.
// What is left to Run needs PostgreSQL (the audience, a retry's --send-at,
// the payload's size for the app) or the API's apps.
//
// --send-at is read here, as the API reads send_at: kong's own time flag
// answered "parsing time "tomorrow" as "2006-01-02T15:04:05Z07:00": cannot
// parse "tomorrow" as "2006"", which shows no time to copy.
func (c *SendCmd) Validate(kctx *kong.Context) error {
	errs := c.flagErrors()
	// The notification is read only with a recipient given: kong says a
	// missing --channel, --user or --token after the validators, and
	// "--title or --body" alone hid it.
	// Nor with several kinds given: kong says they can't be used together.
	kinds := 0
	for _, n := range []int{len(c.Channels), len(c.Users), len(c.Tokens)} {
		if n > 0 {
			kinds++
		}
	}
	if kinds == 0 {
		errs = append(errs, emptyRecipients(kctx))
	}
	if kinds != 1 {
		return errors.Join(errs...)
	}
	content, note, err := c.content()
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Normalize checks again what the flags' checks said first, in the
	// API's words: only a command line they passed is built.
	return c.build(content, note)
}

// emptyRecipients is the refusal of a recipient flag given an empty value:
// --user "$ids" with $ids empty satisfied kong's "one of --channel, --user
// or --token" with no user in it, and the command went on as a campaign to
// no channel ("channels: at least one channel is required", exit 1). Left
// out altogether, kong says so itself after the validators.
func emptyRecipients(kctx *kong.Context) error {
	for _, p := range kctx.Path {
		if p.Flag == nil {
			continue
		}
		switch p.Flag.Name {
		case "user", "channel", "token":
			return fmt.Errorf("--%s: given no value, so nobody to send to (an empty shell variable?); give at least one, e.g. %s",
				p.Flag.Name, map[string]string{"user": "--user 1,2,3", "channel": "--channel news", "token": "--token ios:HEX"}[p.Flag.Name])
		}
	}
	return nil
}

// flagErrors are the problems of single flags, each said of its flag.
func (c *SendCmd) flagErrors() []error {
	var errs []error
	// Checked here, not by Normalize, whose "ttl_seconds: ... got 35996400"
	// named the API's field in seconds ("got 0" for 500ms), and which
	// reads 0 as the default: --ttl 0s went out with 24h.
	if c.TTL < time.Second || c.TTL > campaign.MaxTTL {
		errs = append(errs, fmt.Errorf("--ttl: must be between 1s and %s (28 days), got %s", campaign.MaxTTL, c.TTL))
	}
	// Normalize's "notification.data: must be a JSON object" named the
	// API's field and showed no example; the JSON's own error says where.
	if !c.dataObject() {
		errs = append(errs, fmt.Errorf(`--data: must be a JSON object of custom keys such as '{"order":"42"}', got %q`, c.Data))
	}
	// Normalize's bound, said of the flag: its "rate_per_second: ..."
	// named the API's field.
	errs = append(errs, dbConnsAtLeastOne("--db-conns", c.DBConns))
	if c.Rate < 0 || c.Rate > campaign.MaxRatePerSecond {
		errs = append(errs, fmt.Errorf("--rate-per-second: must be a whole number of sends per second from 1 to %d, or 0 for no cap of its own; got %d",
			campaign.MaxRatePerSecond, c.Rate))
	}
	// Checked here, not by a kong enum, whose "--priority must be one of
	// "","normal","high"" offered the empty string as a choice.
	switch c.Priority {
	case "", campaign.PriorityNormal, campaign.PriorityHigh:
	default:
		errs = append(errs, fmt.Errorf("--priority: must be normal or high, got %q (left out: normal for a campaign, high for a message)", c.Priority))
	}
	c.sendAt = time.Time{}
	if c.SendAt != "" {
		t, err := parseSendAt(c.SendAt, time.Now())
		if err != nil {
			errs = append(errs, err)
		}
		c.sendAt = t
		// Normalize's bound, said of the flag ("send_at: at most 90 days
		// ahead" named the API's field).
		if limit := time.Now().Add(campaign.MaxSchedule); err == nil && t.After(limit) {
			errs = append(errs, fmt.Errorf("--send-at: at most %d days ahead (until %s), got %s", int(campaign.MaxSchedule.Hours()/24),
				limit.UTC().Format(time.RFC3339), t.UTC().Format(time.RFC3339)))
		}
	}
	if len(c.Users) == 0 && len(c.Tokens) == 0 {
		return errs
	}
	// Before Redis is dialled: --user=-5 went on to connect, and with no
	// Redis up said only that.
	for _, u := range c.Users {
		if u <= 0 {
			errs = append(errs, fmt.Errorf("--user: user ids are positive, got %d", u))
			break
		}
	}
	errs = append(errs, c.parseTokens())
	var given []string
	if c.SendAt != "" {
		given = append(given, "--send-at")
	}
	if c.Rate != 0 {
		given = append(given, "--rate-per-second")
	}
	if c.AllowEmpty {
		given = append(given, "--allow-empty")
	}
	if len(given) > 0 {
		errs = append(errs, fmt.Errorf("%s: a direct message (--user, --token) is sent at once to whom it names, not scheduled, throttled "+
			"or checked for an audience; leave it out, or send a campaign (--channel)", strings.Join(given, ", ")))
	}
	return errs
}

// dataObject is whether --data is left out or a JSON object.
func (c *SendCmd) dataObject() bool {
	if c.Data == "" {
		return true
	}
	var obj map[string]json.RawMessage
	return json.Unmarshal([]byte(c.Data), &obj) == nil && obj != nil
}

// content is the notification the flags make, or what is wrong with it:
// every problem, a missing text beside a negative --badge.
func (c *SendCmd) content() (push.Content, json.RawMessage, error) {
	def := push.PriorityNormal
	if len(c.Users) > 0 || len(c.Tokens) > 0 {
		def = push.PriorityHigh
	}
	return c.notification(def)
}

// build makes the campaign (c.camp) or the direct message (c.msg) the
// flags describe, normalized as the API normalizes it, and says what is
// wrong in the flags' names.
func (c *SendCmd) build(content push.Content, note json.RawMessage) error {
	message := len(c.Users) > 0 || len(c.Tokens) > 0
	camp := campaign.Campaign{ID: c.ID, App: c.App, Channels: c.Channels, Category: c.Category,
		Title: content.Title, Body: content.Body, Data: content.Data, Notification: note,
		TTL: c.TTL, SendAt: c.sendAt, RatePerSecond: c.Rate, Priority: c.Priority}
	if !message {
		if err := camp.Normalize(); err != nil {
			return flagOf(err)
		}
		c.camp = camp
		return nil
	}
	camp.Channels, camp.SendAt, camp.RatePerSecond = nil, time.Time{}, 0
	m := campaign.Message{Campaign: camp, Users: c.Users, Tokens: c.tokens}
	if err := m.Normalize(); errors.Is(err, campaign.ErrTooManyUsers) {
		// The error's "users: ...: too many users" named the API's field
		// and not what to do, as the API's 413 does ("split it").
		return fmt.Errorf("--user: a message lists at most %d users, got %d; send the others in another message",
			campaign.MaxMessageUsers, len(c.Users))
	} else if errors.Is(err, campaign.ErrTooManyTokens) {
		return fmt.Errorf("--token: a message lists at most %d tokens, got %d; send the others in another message",
			campaign.MaxMessageTokens, len(c.Tokens))
	} else if err != nil {
		return flagOf(c.tokenFlag(err))
	}
	c.msg = m
	return nil
}

// flagOf says a Normalize error of the API's fields ("channels[0]: ...",
// "category: ...", "id: ...") in send's flags: its user wrote flags.
func flagOf(err error) error {
	var ve *campaign.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	for _, f := range []struct{ field, flag string }{{"channels[", "--channel"}, {"category:", "--category"},
		{"id:", "--id"}, {"app:", "--app"}} {
		if !strings.HasPrefix(ve.Msg, f.field) {
			continue
		}
		_, rest, _ := strings.Cut(ve.Msg, ":")
		return &campaign.ValidationError{Msg: f.flag + ":" + rest}
	}
	return err
}

// Run creates the campaign or the message Validate built, and prints its id.
func (c *SendCmd) Run(g *Globals) error {
	known, err := c.knownApps()
	if err != nil {
		return err
	}
	// Without --id it cannot be a retry: an unknown app is said before
	// anything is dialled (with --id, only once no record answers it).
	if c.ID == "" {
		if err := c.checkApp(known); err != nil {
			return err
		}
	}
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	db, err := g.DB(c.DBConns)
	if err != nil {
		return err
	}
	defer db.Close()
	if len(c.Users) > 0 || len(c.Tokens) > 0 {
		return c.message(g, rdb, db, known)
	}
	ctx, cancel := context.WithTimeout(g.Context(), 30*time.Second)
	defer cancel()
	camp, created, err := campaign.Create(ctx, rdb, db, g.Keys(), c.camp, c.admit(db, known)...)
	if err != nil {
		return createError("campaign", camp.ID, err)
	}
	if !created {
		log := g.Logger()
		log.Info().Str("campaign", camp.ID).Msg("campaign already exists; nothing new is sent")
	}
	fmt.Println(camp.ID)
	return c.follow(g, rdb, db, camp.ID)
}

// message sends the direct message Validate built and prints its id.
func (c *SendCmd) message(g *Globals, rdb rueidis.Client, db *pgxpool.Pool, known api.KnownApps) error {
	ctx, cancel := context.WithTimeout(g.Context(), 30*time.Second)
	defer cancel()
	m, created, err := campaign.CreateMessage(ctx, rdb, db, g.Keys(), c.msg, c.admitMessage(db, known)...)
	if err != nil {
		return createError("message", m.ID, err)
	}
	if !created {
		log := g.Logger()
		log.Info().Str("message_id", m.ID).Msg("message already exists; nothing new is sent")
	}
	fmt.Println(m.ID)
	return c.follow(g, rdb, db, m.ID)
}

// dataFlag names --data where a check's error names the API's
// notification.data ("notification.data: key "aps" is APNs's own
// dictionary"): send's user wrote the flag, not the object.
func dataFlag(err error) error {
	var ve *campaign.ValidationError
	if errors.As(err, &ve) {
		if rest, ok := strings.CutPrefix(ve.Msg, "notification.data: "); ok {
			return &campaign.ValidationError{Msg: "--data: " + rest}
		}
	}
	return err
}

// allowEmptyFlag names --allow-empty where CheckAudience's error tells
// the API's caller to send "allow_empty": true: send's user writes no
// JSON, and "send \"allow_empty\": true ... (or --allow-empty)" read as
// two ways, one of them for another tool.
func allowEmptyFlag(err error) error {
	var ve *campaign.ValidationError
	if errors.As(err, &ve) {
		return &campaign.ValidationError{Msg: strings.Replace(ve.Msg, campaign.AllowEmptyAdvice, "give --allow-empty", 1)}
	}
	return err
}

// createError says what a create's error means for --id, as the API's 409
// does: ErrConflict's own text said "campaign id already used for a
// different campaign", of a message too, and not that a retry whose content
// changed was already accepted, so a new --id would send it twice.
func createError(kind, id string, err error) error {
	if r := (refusal{}); errors.As(err, &r) {
		return r.error // an Admit's, said in send's words
	}
	if errors.Is(err, campaign.ErrConflict) && !errors.Is(err, campaign.ErrOtherKind) {
		return fmt.Errorf("send: %s id %q is already used for different content: if this is a retry of that %s, "+
			"it is already accepted and is not sent again; give another --id only for a different %s", kind, id, kind, kind)
	}
	var verr *campaign.ValidationError
	if errors.Is(err, campaign.ErrOtherKind) || errors.As(err, &verr) {
		return fmt.Errorf("send: %w", err)
	}
	// PostgreSQL or Redis failed: the record may be stored (a commit whose
	// answer was lost), queued in part, or not stored. Run again without
	// --id, it would be a second one, sent twice; with this id it is
	// created, or found and queued, once.
	return fmt.Errorf("send: %w; run the same command again with --id %s: the %s is sent once however often it runs", err, id, kind)
}

// follow, with --wait, follows what was sent to its end on stderr: the id
// on stdout stays the one line a script reads.
func (c *SendCmd) follow(g *Globals, rdb rueidis.Client, db *pgxpool.Pool, id string) error {
	if !c.Wait {
		return nil
	}
	return follow(g.Context(), campaignSource{rdb: rdb, keys: g.Keys(), db: db}, id, os.Stderr,
		isatty.IsTerminal(os.Stderr.Fd()), time.Second, bySend)
}

// parseSendAt reads --send-at: an RFC 3339 time as the API reads send_at,
// or a duration from now ("+10m", "in 2h"), the first thing a person
// scheduling from a shell types; it is read once, here, so the campaign
// holds one absolute time. A time without a zone is refused with the same
// time in UTC to copy: a guess at the zone would start it hours off.
func parseSendAt(s string, now time.Time) (time.Time, error) {
	if rel, ok := strings.CutPrefix(s, "+"); ok {
		return sendAtIn(s, rel, now)
	}
	if rel, ok := strings.CutPrefix(s, "in "); ok {
		return sendAtIn(s, strings.TrimSpace(rel), now)
	}
	t, err := campaign.ParseSendAt(s)
	if err == nil {
		return t, nil
	}
	const want = `--send-at: must be an RFC 3339 time such as "2026-01-02T15:04:05Z" or "2026-01-02T17:04:05+02:00", or a duration from now such as "+10m" or "in 2h"`
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04"} {
		if local, lerr := time.Parse(layout, s); lerr == nil {
			return time.Time{}, fmt.Errorf(`%s, got %q, which has no time zone: %q if it is UTC`, want, s, local.Format("2006-01-02T15:04:05Z"))
		}
	}
	if d, derr := time.ParseDuration(s); derr == nil && d > 0 {
		return time.Time{}, fmt.Errorf(`%s, got %q: "+%s" if from now`, want, s, s)
	}
	return time.Time{}, fmt.Errorf("%s, got %q", want, s)
}

// sendAtIn is --send-at given as a duration from now.
func sendAtIn(s, rel string, now time.Time) (time.Time, error) {
	d, err := time.ParseDuration(rel)
	if err != nil || d <= 0 {
		return time.Time{}, fmt.Errorf(`--send-at: %q is not a duration from now such as "+10m", "in 2h" or "+1h30m"`, s)
	}
	return now.Add(d).Truncate(time.Second), nil
}
