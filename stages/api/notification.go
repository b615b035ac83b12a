package api

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/text/language"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// notificationRequest is the notification object of a campaign or a
// message (DESIGN, "The notification object"). Wrong JSON types are refused
// by the strict decoder, naming the field; parseNotification checks the
// values.
type notificationRequest struct {
	Title      string                 `json:"title"`
	Subtitle   string                 `json:"subtitle"`
	Body       string                 `json:"body"`
	Data       jsontext.Value         `json:"data"`
	Badge      *int                   `json:"badge"`
	Sound      string                 `json:"sound"`
	Image      string                 `json:"image"`
	Category   string                 `json:"category"`
	ThreadID   string                 `json:"thread_id"`
	CollapseID string                 `json:"collapse_id"`
	Silent     bool                   `json:"silent"`
	Localized  map[string]textRequest `json:"localized"`
}

// textRequest is one language's text in "localized".
type textRequest struct {
	Title    string `json:"title"`
	Subtitle string `json:"subtitle"`
	Body     string `json:"body"`
}

// Limits of the notification object's fields.
const (
	maxSound      = 64   // a sound file name of the app bundle, or "default"
	maxImageURL   = 2048 // what a phone fetches; longer URLs are trouble anywhere
	maxTag        = 64   // category and thread_id
	maxCollapseID = 64   // APNs's limit on apns-collapse-id
	maxLocales    = 100
	maxBadge      = 1<<31 - 1
)

// ParseNotification reads a notification object (JSON) as POST
// /v1/campaigns and /v1/messages do, with their decoder and checks, so
// that `pushpipe send` builds from its flags exactly what the API accepts.
// The error names the object's field ("notification.badge: ..."); one of
// several problems is their errors.Join, each naming its field.
func ParseNotification(raw []byte, priority, def string) (push.Content, error) {
	var n notificationRequest
	if err := jsonv2.Unmarshal(raw, &n, strict); err != nil {
		// In the API's words for the same object in a body (jsonProblem),
		// not the decoder's: "json: cannot unmarshal JSON string into Go
		// api.textRequest" reached the console's form and said nothing a
		// user could act on.
		return push.Content{}, fmt.Errorf("notification: %s", jsonProblem(err, 0))
	}
	return parseNotification(&n, priority, def)
}

// parseNotification checks a notification object and returns it as it is
// stored and rendered. priority is the request's top-level priority, "" for
// def. The error names the field and what to do, of every field that is
// wrong (errors.Join; problemsLine writes them in one line): a client, or
// `pushpipe send`, that fixed the one field named learnt of the next only
// from the next 400. The rendered size is checked later
// (deliver.CheckCampaign), against the stored data.
func parseNotification(n *notificationRequest, priority, def string) (push.Content, error) {
	if n == nil {
		return push.Content{}, errors.New(`notification: is required, e.g. {"title": "...", "body": "..."}`)
	}
	c := push.Content{
		Text:  push.Text{Title: n.Title, Subtitle: n.Subtitle, Body: n.Body},
		Badge: n.Badge, Sound: n.Sound, Image: n.Image, Category: n.Category,
		ThreadID: n.ThreadID, CollapseID: n.CollapseID, Silent: n.Silent, Priority: priority,
	}
	if string(n.Data) != "null" && len(n.Data) > 0 {
		c.Data = []byte(n.Data)
	}
	var errs []error
	check := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{field}, args...)...))
	}
	switch priority {
	case "":
		c.Priority = def
	case push.PriorityHigh, push.PriorityNormal:
	default:
		check("priority", `must be "normal" or "high", got %q`, devices.Echo(priority))
	}
	errs = append(errs, checkText("notification", c.Text, !c.Silent))
	if c.Silent {
		// A background push shows nothing: Apple drops one that carries an
		// alert, sound or badge, and FCM's data-only message has no text.
		for _, f := range []struct {
			name string
			set  bool
		}{{"title", c.Title != ""}, {"subtitle", c.Subtitle != ""}, {"body", c.Body != ""}, {"badge", c.Badge != nil},
			{"sound", c.Sound != ""}, {"image", c.Image != ""}, {"localized", len(n.Localized) > 0}} {
			if f.set {
				check("notification."+f.name, "a silent push shows nothing; remove it or set \"silent\": false")
			}
		}
	}
	if c.Badge != nil && (*c.Badge < 0 || *c.Badge > maxBadge) {
		check("notification.badge", "must be between 0 (clears the badge) and %d, got %d", maxBadge, *c.Badge)
	}
	if len(c.Sound) > maxSound || strings.ContainsAny(c.Sound, "/\\\x00") {
		check("notification.sound", "must be a sound file name of the app (at most %d bytes, no '/'), or \"default\"", maxSound)
	}
	if c.Image != "" {
		// As written, not as url.Parse reads it: it lower-cases "HTTPS://",
		// which openapi.json's pattern refuses; and user:pass@ would go to
		// every device in the payload.
		if u, err := url.Parse(c.Image); err != nil || !strings.HasPrefix(c.Image, "https://") || u.Host == "" || len(c.Image) > maxImageURL {
			check("notification.image", "must be an https:// URL of at most %d bytes", maxImageURL)
		} else if u.User != nil {
			check("notification.image", "must not carry a user name or password: every device receives the URL; serve the image without them")
		}
	}
	for _, f := range []struct{ name, v string }{{"category", c.Category}, {"thread_id", c.ThreadID}, {"collapse_id", c.CollapseID}} {
		if len(f.v) > maxTag || !printable(f.v) {
			check("notification."+f.name, "must be at most %d printable bytes", maxTag)
		}
	}
	if len(n.Localized) > maxLocales {
		check("notification.localized", "at most %d locales, got %d", maxLocales, len(n.Localized))
	}
	for _, tag := range slices.Sorted(maps.Keys(n.Localized)) {
		field := "notification.localized." + tag
		if _, err := language.Parse(tag); err != nil || strings.Contains(tag, "_") {
			check(field, "the key must be a BCP 47 language tag such as \"ko\" or \"pt-BR\"")
			continue
		}
		for other := range n.Localized {
			if other != tag && strings.EqualFold(other, tag) {
				check(field, "is given twice (tags ignore case): keep one of %q and %q", tag, other)
			}
		}
		t := n.Localized[tag]
		errs = append(errs, checkText(field, push.Text(t), true))
		if c.Localized == nil {
			c.Localized = map[string]push.Text{}
		}
		c.Localized[tag] = push.Text(t)
	}
	if keys, err := dataKeys(c.Data); err == nil && c.Image != "" && slices.Contains(keys, "image") {
		check("notification.data", "key \"image\" is where APNs carries the notification's image; rename it")
	}
	return c, errors.Join(errs...)
}

// problemsLine is a request's problems (errors.Join) in the one line of an
// error body, {"error": "a: ...; b: ..."}.
func problemsLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

// checkText checks a title, subtitle and body: valid UTF-8 without NUL
// (PostgreSQL's text and jsonb hold none), and a title or a body, not only
// white space, when the notification is shown. It says every problem
// (errors.Join).
func checkText(field string, t push.Text, shown bool) error {
	var errs []error
	switch {
	case !shown:
	case t.Title == "" && t.Body == "":
		errs = append(errs, fmt.Errorf("%s: a title or a body is required", field))
	case strings.TrimSpace(t.Title) == "" && strings.TrimSpace(t.Body) == "":
		// A template that rendered blank ("{{name}}" of nobody): the
		// phone shows an empty notification, to everyone the campaign
		// reaches. The prefix is the one above (send and the console read it).
		errs = append(errs, fmt.Errorf("%s: a title or a body is required: they hold only white space, which shows an empty notification", field))
	}
	for _, f := range []struct{ name, v string }{{"title", t.Title}, {"subtitle", t.Subtitle}, {"body", t.Body}} {
		if !utf8.ValidString(f.v) {
			errs = append(errs, fmt.Errorf("%s.%s: must be valid UTF-8", field, f.name))
		} else if i := strings.IndexByte(f.v, 0); i >= 0 {
			errs = append(errs, fmt.Errorf("%s.%s: contains a NUL character (\\u0000) at byte %d, which cannot be stored; remove it", field, f.name, i))
		}
	}
	return errors.Join(errs...)
}

// printable reports s is free of control characters (they end up in
// HTTP headers: apns-collapse-id).
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return false
		}
	}
	return true
}

// dataKeys are the top-level keys of a data object.
func dataKeys(data []byte) ([]string, error) {
	if len(data) == 0 {
		return nil, nil
	}
	dec := jsontext.NewDecoder(strings.NewReader(string(data)))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, errors.New("not an object")
	}
	var keys []string
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, err
		}
		keys = append(keys, tok.String())
		if err := dec.SkipValue(); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
