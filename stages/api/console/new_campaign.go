package console

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// form is the new-campaign form's fields, kept to fill the form again
// after a refusal.
type form struct {
	ID, App, Channels, Category, Title, Body, Data, TTL, Rate, When, SendAt string
	// Priority is "normal" or "high" (the campaign's lane); the rest is
	// the notification object's (DESIGN, "The notification object").
	Priority, Subtitle, Image, Sound, Badge, ThreadID, CollapseID string
	// Localized is the texts per language, as the API's "localized"
	// object: a JSON object is how many languages are typed at once.
	Localized string
	// Silent is a background push: no text, the app gets the data.
	Silent bool
	// AllowEmpty creates a campaign nobody would receive (allow_empty).
	AllowEmpty bool
	// Apps are the apps the App field offers (Config.Apps).
	Apps []string
	// Key is the form's own idempotency key, made when the form is
	// served: the campaign's id when Id is left empty, so the same form
	// posted twice (a double click, a browser's retry) is one campaign.
	Key string
	// Problems are a refused form's problems, each said at its field
	// (At) and all of them above the form.
	Problems []problem
	// Now is the time the form was served, as the send time is typed:
	// the operator's own clock is in another zone.
	Now string
}

// summary is what the refused form says above it: its one problem, or how
// many it has and where, with those of no field in full (each of a field
// is said there).
func (f form) summary() string {
	if len(f.Problems) == 1 {
		return f.Problems[0].Msg
	}
	var at, whole []string
	for _, p := range f.Problems {
		if p.Field == "" {
			whole = append(whole, p.Msg)
		} else {
			label, _, _ := strings.Cut(p.Msg, ":")
			at = append(at, label)
		}
	}
	s := fmt.Sprintf("Not created: %d problems.", len(f.Problems))
	if len(at) > 0 {
		s += " Each is said at its field: " + strings.Join(at, ", ") + "."
	}
	return strings.Join(append([]string{s}, whole...), " ")
}

// problem is one problem of a refused form: the field it is at (its id in
// new.html, "" for the form as a whole) and what it says.
type problem struct{ Field, Msg string }

// At is the problem of the form's field id, if any: the template shows it
// under the field, which it describes (aria-describedby).
func (f form) At(id string) problem {
	for _, p := range f.Problems {
		if p.Field == id {
			return p
		}
	}
	return problem{}
}

// Invalid marks the form's field id as invalid, described by its problem
// (At), when it has one.
func (f form) Invalid(id string) template.HTMLAttr {
	if f.At(id).Msg == "" {
		return ""
	}
	return template.HTMLAttr(`aria-invalid="true" aria-describedby="` + template.HTMLEscapeString(id) + `-problem"`)
}

// formFields are the form's labels (formSays's) and the ids of their
// fields in new.html: a problem said by its label is shown at its field.
var formFields = map[string]string{
	"App": "app", "Channels": "channels", "Channel": "channels", "Category": "category", "Title": "title",
	"Title and body": "title", "Body": "body", "Data": "data", "Subtitle": "subtitle", "Image URL": "image",
	"Sound": "sound", "Badge": "badge", "Thread id": "thread-id", "Collapse id": "collapse-id",
	"Localized": "localized", "Time to live": "ttl", "Rate": "rate", "Id": "cid", "Priority": "priority",
	"Send": "send-at", "Send at": "send-at", "Campaign id": "cid",
}

// problemOf is msg as a problem at the field its label names.
func problemOf(msg string) problem {
	label, _, _ := strings.Cut(msg, ":")
	if i := strings.IndexAny(label, "[."); i >= 0 {
		label = label[:i] // "Data.url", "Localized[ko]"
	}
	if f, ok := formFields[label]; ok {
		return problem{Field: f, Msg: msg}
	}
	if strings.HasPrefix(msg, "Channel ") { // `Channel "sport news": …`
		return problem{Field: "channels", Msg: msg}
	}
	return problem{Msg: msg}
}

// AllowEmptyLabel is the text of the form's allow_empty box.
func (form) AllowEmptyLabel() string { return allowEmptyLabel }

// More reports whether a field of the form's "More" block is filled: the
// block opens then, so a refusal naming one shows it.
func (f form) More() bool {
	return f.Subtitle != "" || f.Image != "" || f.Sound != "" || f.Badge != "" || f.ThreadID != "" || f.CollapseID != "" ||
		f.Localized != ""
}

// notification is the form's notification object as POST /v1/campaigns
// takes it (what is left empty is left out), or the form's refusal. Title,
// subtitle and body go as typed, as the API takes them; the URL, names and
// ids without the spaces a paste brings along.
func (f form) notification() ([]byte, string) {
	obj := map[string]any{}
	for _, t := range []struct{ key, label, v string }{{"title", "Title", f.Title}, {"subtitle", "Subtitle", f.Subtitle}, {"body", "Body", f.Body}} {
		if !utf8.ValidString(t.v) {
			// JSON would carry it as U+FFFD, sent as if typed.
			return nil, t.label + ": must be valid UTF-8."
		}
		if t.v != "" {
			obj[t.key] = t.v
		}
	}
	for k, v := range map[string]string{"image": f.Image, "sound": f.Sound, "thread_id": f.ThreadID, "collapse_id": f.CollapseID} {
		if v = strings.TrimSpace(v); v != "" {
			obj[k] = v
		}
	}
	if v := strings.TrimSpace(f.Badge); v != "" {
		// The number as typed, so the API's parser names its range.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, "Badge: a whole number the app icon shows (0 clears it), or empty to leave the badge as it is."
		}
		obj["badge"] = n
	}
	if f.Silent {
		obj["silent"] = true
	}
	if d := strings.TrimSpace(f.Data); d != "" {
		if !json.Valid([]byte(d)) {
			return nil, `Data: must be a JSON object, e.g. {"url": "https://example.com"}`
		}
		obj["data"] = json.RawMessage(d)
	}
	if l := strings.TrimSpace(f.Localized); l != "" {
		if !json.Valid([]byte(l)) || !strings.HasPrefix(l, "{") {
			return nil, `Localized: must be a JSON object of texts by language tag, e.g. {"ko": {"title": "속보", "body": "…"}}`
		}
		// Each language's text an object too: the API's parser refused
		// {"ko": "속보"} in Go's words ("cannot unmarshal JSON string into
		// Go api.textRequest"), under "Title and body".
		var langs map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &langs); err == nil {
			for _, tag := range slices.Sorted(maps.Keys(langs)) {
				if v := strings.TrimSpace(string(langs[tag])); !strings.HasPrefix(v, "{") {
					return nil, fmt.Sprintf(`Localized: %q must be an object of its title, subtitle and body, e.g. {%q: {"title": "…", "body": "…"}}; got %s`,
						devices.Echo(tag), devices.Echo(tag), devices.Echo(v))
				}
			}
		}
		obj["localized"] = json.RawMessage(l)
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, "Not created: " + err.Error() + "."
	}
	return raw, ""
}

func (c *Console) newCampaignPage(w http.ResponseWriter, r *http.Request, s session) {
	// The apps offered: the field was empty with no hint, and the
	// operator had to know the app's id by heart. The only one filled in:
	// an API of one app left it to be typed, or picked, every time.
	f := form{When: "now", TTL: "86400", Priority: push.PriorityNormal, Key: campaign.NewID(), Apps: c.apps(),
		Now: time.Now().UTC().Format(sendAtLayout)}
	if len(f.Apps) == 1 {
		f.App = f.Apps[0]
	}
	c.render(w, r, http.StatusOK, "new", page{Title: "New campaign", Nav: "new", Session: s, Data: f})
}

// apps are the apps the form offers (Config.Apps), none without a list.
func (c *Console) apps() []string {
	if c.cfg.Apps == nil {
		return nil
	}
	return c.cfg.Apps()
}

// createCampaign reads the form into the same campaign.Campaign that POST
// /v1/campaigns builds, with the same checks.
func (c *Console) createCampaign(w http.ResponseWriter, r *http.Request, s session) {
	f := form{ID: r.PostFormValue("id"), App: r.PostFormValue("app"), Channels: r.PostFormValue("channels"),
		Category: r.PostFormValue("category"), Title: r.PostFormValue("title"), Body: r.PostFormValue("body"),
		Data: r.PostFormValue("data"), TTL: r.PostFormValue("ttl_seconds"), Rate: r.PostFormValue("rate_per_second"),
		When:   r.PostFormValue("when"),
		SendAt: r.PostFormValue("send_at"), AllowEmpty: r.PostFormValue("allow_empty") == "1", Key: r.PostFormValue("key"),
		Priority: r.PostFormValue("priority"), Subtitle: r.PostFormValue("subtitle"), Image: r.PostFormValue("image"),
		Sound: r.PostFormValue("sound"), Badge: r.PostFormValue("badge"), ThreadID: r.PostFormValue("thread_id"),
		CollapseID: r.PostFormValue("collapse_id"), Silent: r.PostFormValue("silent") == "1", Localized: r.PostFormValue("localized")}
	f.Apps, f.Now = c.apps(), time.Now().UTC().Format(sendAtLayout) // offered again on a refusal
	refuse := func(msgs ...string) {
		f.Problems = f.Problems[:0]
		for _, m := range msgs {
			f.Problems = append(f.Problems, problemOf(m))
		}
		c.render(w, r, http.StatusBadRequest, "new", page{Title: "New campaign", Nav: "new", Session: s, Data: f, Error: f.summary()})
	}
	// Every problem of the form at once, each at its field: an empty form
	// was refused for its title and body alone, then, filled in, for its
	// channels, then for its app, one post at a time.
	var says []string
	camp := campaign.Campaign{ID: cmp.Or(strings.TrimSpace(f.ID), f.Key), App: strings.TrimSpace(f.App), Category: strings.TrimSpace(f.Category)}
	for ch := range strings.SplitSeq(f.Channels, ",") {
		if ch = strings.TrimSpace(ch); ch != "" {
			camp.Channels = append(camp.Channels, ch)
		}
	}
	// What the model would refuse first, said here with the rest (the
	// model's own check stays, in its words, for what gets past).
	if camp.App == "" {
		says = append(says, "App: required, the app's id, e.g. com.example.news")
	}
	if len(camp.Channels) == 0 {
		says = append(says, formSays(`channels: at least one channel is required, e.g. ["breaking-news"]`))
	}
	// The notification object, read by the API's own parser: the form
	// accepts what POST /v1/campaigns accepts, and stores what it stores.
	raw, msg := f.notification()
	var content push.Content
	var err error
	switch {
	case msg != "":
		says = append(says, msg)
	default:
		if content, err = c.cfg.ParseNotification(raw, f.Priority, push.PriorityNormal); err != nil {
			// One line each from the parser (errors.Join), each said by
			// its field's label.
			for msg := range strings.SplitSeq(err.Error(), "\n") {
				says = append(says, formSays(msg))
			}
		}
	}
	if t := strings.TrimSpace(f.TTL); t != "" {
		// Bounded here, before it becomes a Duration: 99999999999 s
		// overflowed and the refusal named a number nobody typed. 0 is
		// refused too: the API reads it as "left out" (a day), which a
		// form that shows the field cannot mean.
		n, err := strconv.ParseInt(t, 10, 64)
		if max := int64(campaign.MaxTTL / time.Second); err != nil || n < 1 || n > max {
			says = append(says, fmt.Sprintf("Time to live: a whole number of seconds from 1 to %s (28 days), e.g. 86400 for a day.", num(max)))
		}
		camp.TTL = time.Duration(n) * time.Second
	}
	if v := strings.TrimSpace(f.Rate); v != "" {
		// POST /v1/campaigns's bounds: 0 was taken as "no cap" and the
		// campaign went out at full speed, the opposite of a cap.
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > campaign.MaxRatePerSecond {
			says = append(says, fmt.Sprintf("Rate: a whole number of sends per second from 1 to %s, or empty for no cap of its own.", num(campaign.MaxRatePerSecond)))
		}
		camp.RatePerSecond = n
	}
	// The app and the time as campaign.Admit checks, run for a new id
	// only: the form sent again (the same id) after its app left the
	// apps file, or after its time came, is answered from its record,
	// not refused for a campaign that was already created.
	var admit []campaign.Admit
	if c.cfg.CheckApp != nil && camp.App != "" {
		admit = append(admit, func(_ context.Context, camp campaign.Campaign) error {
			// The API's own words (api.KnownApps.Check): they name the
			// apps file, or PUSHPIPE_APP_KEYS, or pushpipe dev's app,
			// whichever this API's apps came from, and the apps when few.
			if err := c.cfg.CheckApp(camp.App); err != nil {
				msg := err.Error()
				if rest, ok := strings.CutPrefix(msg, "app "); ok {
					msg = "App " + rest
				}
				return &campaign.ValidationError{Msg: msg + "."}
			}
			return nil
		})
	}
	var sendAt time.Time
	if f.When != "later" && strings.TrimSpace(f.SendAt) != "" {
		// A time picked with "now" still chosen (the radio is easy to
		// miss) was ignored: a campaign meant for tonight went out at
		// once. Which one was meant is the operator's to say.
		says = append(says, "Send: a time is filled in but \"now\" is chosen; choose \"at\" to send at that time, or clear the time to send now.")
	}
	if f.When == "later" {
		t, err := parseSendAt(f.SendAt)
		if err != nil {
			says = append(says, "Send at: a date and time in UTC, written as the console writes times, e.g. "+
				time.Now().UTC().Add(time.Hour).Format(sendAtLayout)+" (year-month-day hours:minutes, 24-hour).")
		}
		// The API starts a campaign whose send_at is past at once. From a
		// form that says "at", a past time is a slip (a local time taken
		// for UTC, yesterday's date) that would send to everyone now.
		admit = append(admit, func(context.Context, campaign.Campaign) error {
			if now := time.Now(); !t.After(now) {
				return &campaign.ValidationError{Msg: fmt.Sprintf("Send at: %s is already past (it is %s now); pick a later time, or choose to send now.",
					t.Format(sendAtLayout+" UTC"), now.UTC().Format(sendAtLayout+" UTC"))}
			}
			return nil
		})
		sendAt = t
	}
	if len(says) > 0 {
		refuse(says...)
		return
	}
	camp.Title, camp.Body, camp.Data, camp.Priority = content.Title, content.Body, content.Data, content.Priority
	if camp.Notification, err = json.Marshal(content); err != nil {
		refuse("Not created: " + err.Error() + ".")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	created, err := c.cfg.Campaigns.Create(ctx, camp, sendAt, f.AllowEmpty, admit...)
	var verr *campaign.ValidationError
	switch {
	case errors.As(err, &verr):
		refuse(formSays(channelNamed(err.Error(), camp.Channels)))
	case errors.Is(err, campaign.ErrConflict) && strings.TrimSpace(f.ID) == "":
		// The form's own key: this form was sent before, with other
		// content, and that campaign exists.
		refuse("This form already created campaign " + camp.ID + " with other content: open that campaign, or open a new form for another campaign.")
	case errors.Is(err, campaign.ErrOtherKind):
		refuse("Campaign id " + camp.ID + " is a direct message's id (campaigns and messages share ids); choose another id or leave it empty.")
	case errors.Is(err, campaign.ErrConflict):
		refuse("Campaign id " + camp.ID + " is already used for a different campaign; choose another id or leave it empty.")
	case err != nil:
		refuse("Not created: " + culprit(err) + ". Submitting again with the same id is safe: it is sent once. " +
			c.failed(r, err, "console: campaign not created"))
	default:
		http.Redirect(w, r, "/ui/campaigns/"+created.ID+"?done=created", http.StatusSeeOther)
	}
}

// sendAtLayout is how the form's send time is typed: as the console writes
// times ("2026-12-07 15:04:05 UTC"), to the minute. The field was a
// datetime-local, which the browser writes in its locale (12/07/2026,
// 03:04 PM) beside pages that say 2026-12-07 15:04:05 UTC.
const sendAtLayout = "2006-01-02 15:04"

// parseSendAt reads the form's send_at, in UTC, as the form says: the
// console's own way of writing a time, with or without seconds and " UTC"
// (a time copied from a page of the console), or a datetime-local's value
// (a form served before, a script that posts it).
func parseSendAt(v string) (time.Time, error) {
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "UTC"))
	var err error
	for _, layout := range []string{sendAtLayout, sendAtLayout + ":05", "2006-01-02T15:04", "2006-01-02T15:04:05"} {
		var t time.Time
		if t, err = time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// formLabels are the API's names of the form's fields, as the model's and
// the notification parser's refusals start ("send_at: …",
// "notification.badge: …"), and the form's labels for them, longest first:
// "notification.data" before "notification".
var formLabels = [][2]string{
	{"notification.data", "Data"}, {"notification.title", "Title"}, {"notification.subtitle", "Subtitle"},
	{"notification.body", "Body"}, {"notification.image", "Image URL"}, {"notification.sound", "Sound"},
	{"notification.badge", "Badge"}, {"notification.thread_id", "Thread id"}, {"notification.collapse_id", "Collapse id"},
	{"notification.localized", "Localized"},
	{"notification", "Title and body"}, {"ttl_seconds", "Time to live"}, {"priority", "Priority"},
	{"rate_per_second", "Rate"}, {"send_at", "Send at"}, {"channels", "Channels"}, {"category", "Category"},
	{"app", "App"}, {"id", "Id"}, {"title", "Title"}, {"body", "Body"},
}

// formSays is a refusal of POST /v1/campaigns's model in the form's words:
// its field by the form's label, and a channel list as the form takes it
// (comma-separated, not a JSON array). "channels: at least one channel is
// required, e.g. [\"breaking-news\"]" sent an operator to type brackets and
// quotes into a field that then refused them as a channel's characters.
func formSays(msg string) string {
	for _, l := range formLabels {
		if rest, ok := strings.CutPrefix(msg, l[0]); ok && (strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, ".") || strings.HasPrefix(rest, "[")) {
			msg = l[1] + rest
			break
		}
	}
	msg = emptyChannelsSays(msg)
	msg = rfc3339.ReplaceAllStringFunc(msg, func(s string) string {
		t, err := campaign.ParseSendAt(s)
		if err != nil {
			return s
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	})
	return strings.NewReplacer(`e.g. ["breaking-news"]`, "e.g. breaking-news, sport",
		`set "silent": false`, `untick "Silent"`,
		"a title or a body is required", `a title or a body is required (or tick "Silent" for a background push of data only)`).Replace(msg)
}

// rfc3339 is a time as the model writes it in a refusal ("send_at: at most
// 90 days ahead (until 2027-03-07T15:04:05Z)"): the API takes and says
// RFC 3339, the console writes times as 2027-03-07 15:04:05 UTC.
var rfc3339 = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

// channelIndex is the model's name of one channel of the list.
var channelIndex = regexp.MustCompile(`^channels\[(\d+)\]`)

// channelNamed writes the model's "channels[1]: has only A-Z …" by the
// channel's name, as the form has it: `Channel "sport news": …`. The form
// takes names, commas between, and "Channels[1]" sent an operator counting
// (from 0) through what they had typed.
func channelNamed(msg string, channels []string) string {
	m := channelIndex.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	i, err := strconv.Atoi(m[1])
	if err != nil || i >= len(channels) {
		return msg
	}
	return fmt.Sprintf("Channel %q", devices.Echo(channels[i])) + msg[len(m[0]):]
}

// emptyChannelsSays writes the model's `channels ["a" "b"] have no
// subscribers` (Go's %q of a list) as the form says channels: a new
// operator read `channels ["nope"]` as a list to type, brackets and all,
// under a field that takes names and commas.
func emptyChannelsSays(msg string) string {
	const head, tail = `channels [`, `] have no subscribers`
	i := strings.Index(msg, head)
	j := strings.Index(msg, tail)
	if i < 0 || j < i {
		return msg
	}
	names := strings.Split(msg[i+len(head):j], `" "`)
	say := "channels " + strings.Join(names, `", "`) + " have no subscribers"
	if len(names) == 1 {
		say = "channel " + names[0] + " has no subscribers"
	}
	if i == 0 { // the refusal's start, where the form names its field
		say = "C" + say[1:]
	}
	return msg[:i] + say + msg[j+len(tail):]
}
