package push

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Text is the translatable part of a notification.
type Text struct {
	Title    string `json:"title,omitempty"`
	Subtitle string `json:"subtitle,omitempty"`
	Body     string `json:"body,omitempty"`
}

// Content is the notification object of a campaign or a message (DESIGN,
// "The notification object") as it is stored: validated by the API, then
// rendered by deliver once per locale and platform, never per device.
type Content struct {
	Text
	// Data is a JSON object of custom keys: APNs gets the values as they
	// are, FCM as strings (a non-string as its JSON text).
	Data       json.RawMessage `json:"data,omitempty"`
	Badge      *int            `json:"badge,omitempty"`
	Sound      string          `json:"sound,omitempty"`
	Image      string          `json:"image,omitempty"`
	Category   string          `json:"category,omitempty"`
	ThreadID   string          `json:"thread_id,omitempty"`
	CollapseID string          `json:"collapse_id,omitempty"` // default: the campaign or message id
	Silent     bool            `json:"silent,omitempty"`
	// Localized maps a BCP 47 tag ("ko", "pt-BR") to its text; a device
	// whose locale matches none gets the default Text.
	Localized map[string]Text `json:"localized,omitempty"`
	// Priority is "high" or "normal" (the request's top-level priority).
	Priority string `json:"priority,omitempty"`
}

// Priorities of a notification.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
)

// Locales are the keys of Localized, and "" for the default text: every
// text a device can get, each rendered once.
func (c *Content) Locales() []string {
	out := []string{""}
	for tag := range c.Localized {
		out = append(out, tag)
	}
	return out
}

// Locale picks the key of Localized a device whose locale is device gets:
// the exact tag, then its language ("pt-BR" → "pt"), else "" (the default
// text). Tags compare case-insensitively and "_" counts as "-" (Android
// reports "pt_BR").
func (c *Content) Locale(device string) string {
	if device == "" || len(c.Localized) == 0 {
		return ""
	}
	want := strings.ReplaceAll(device, "_", "-")
	lang, _, _ := strings.Cut(want, "-")
	fallback := ""
	for tag := range c.Localized {
		if strings.EqualFold(tag, want) {
			return tag
		}
		if strings.EqualFold(tag, lang) {
			fallback = tag
		}
	}
	return fallback
}

// Render is the provider-neutral notification for devices getting locale
// (a key of Localized, or "" for the default text), Token, Platform and App
// left for the sender. id is the campaign or message id: the default
// collapse id, and with the locale the Key senders cache renderings by.
// category is the request's category when the object names none; expires
// is when the campaign expires (Notification.Expires).
func (c *Content) Render(id, locale, category string, expires time.Time) (Notification, error) {
	data, err := DataFields(c.Data)
	if err != nil {
		return Notification{}, err
	}
	text := c.Text
	if t, ok := c.Localized[locale]; ok && locale != "" {
		text = t
	}
	if c.Category != "" {
		category = c.Category
	}
	collapse := c.CollapseID
	if collapse == "" {
		collapse = CollapseID(id)
	}
	key := id
	if locale != "" {
		key = id + "\x00" + locale // no id holds a NUL
	}
	n := Notification{
		Key:   key,
		Title: text.Title, Subtitle: text.Subtitle, Body: text.Body, Data: data,
		Badge: c.Badge, Sound: c.Sound, Image: c.Image, ThreadID: c.ThreadID, Category: category,
		Silent: c.Silent, CollapseID: collapse, Expires: expires,
		HighPriority: c.Priority == PriorityHigh,
	}
	if n.Silent { // nothing is shown: the text and its trimmings go
		n.Title, n.Subtitle, n.Body, n.Sound, n.Badge, n.Image = "", "", "", "", nil, ""
	}
	return n, nil
}

// DataFields splits a JSON object into its keys, each value kept as the
// JSON it is (Notification.Data); nil for none.
func DataFields(raw []byte) (map[string]json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("data is not a JSON object: %w", err)
	}
	if len(obj) == 0 {
		return nil, nil
	}
	return obj, nil
}

// DataStrings is Data as FCM carries it (its data values must be strings):
// a string as it is, null as "", anything else as its JSON text (3 → "3").
func (n Notification) DataStrings() map[string]string {
	if len(n.Data) == 0 {
		return nil
	}
	out := make(map[string]string, len(n.Data))
	for k, v := range n.Data {
		var s string
		var b bytes.Buffer
		switch {
		case json.Unmarshal(v, &s) == nil:
			out[k] = s
		case json.Compact(&b, v) == nil: // jsonb gives {"a": 1}; APNs's encoder compacts too
			out[k] = b.String()
		default:
			out[k] = string(v)
		}
	}
	return out
}

// maxCollapseID is APNs's limit on apns-collapse-id.
const maxCollapseID = 64

// CollapseID is id, or a digest of it when it is longer than APNs accepts:
// a repeated request must carry the same collapse id every time.
func CollapseID(id string) string {
	if len(id) <= maxCollapseID {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}
