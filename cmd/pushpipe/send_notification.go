package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// notification is the notification object send's flags make, read by the
// API's own parser, so that `pushpipe send` accepts exactly what POST
// /v1/campaigns and /v1/messages do; def is the priority when --priority
// is not given. It returns the object as it is stored, nil for none.
func (c *SendCmd) notification(def string) (push.Content, json.RawMessage, error) {
	obj := map[string]any{}
	for k, v := range map[string]string{"title": c.Title, "subtitle": c.Subtitle, "body": c.Body, "sound": c.Sound,
		"image": c.Image, "thread_id": c.ThreadID, "collapse_id": c.CollapseID} {
		if v != "" {
			obj[k] = v
		}
	}
	if c.Badge != nil {
		obj["badge"] = *c.Badge
	}
	if c.Silent {
		obj["silent"] = true
	}
	if c.Data != "" && c.dataObject() { // else flagErrors says it
		obj["data"] = json.RawMessage(c.Data)
	}
	// Every problem is said at once: a --localized text that is no
	// object is left out of what the parser reads, which then says the
	// problems of the other flags.
	var errs []error
	if len(c.Localized) > 0 {
		texts := map[string]json.RawMessage{}
		for _, tag := range slices.Sorted(maps.Keys(c.Localized)) {
			text := c.Localized[tag]
			var t map[string]json.RawMessage
			if err := json.Unmarshal([]byte(text), &t); err != nil || t == nil {
				errs = append(errs, fmt.Errorf(`--localized %s: must be a JSON object such as '%s={"title":"...","body":"..."}', got %q`, tag, tag, text))
				continue
			}
			texts[tag] = json.RawMessage(text)
		}
		if len(texts) > 0 {
			obj["localized"] = texts
		}
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return push.Content{}, nil, err
	}
	priority := c.Priority
	if priority != push.PriorityNormal && priority != push.PriorityHigh {
		priority = "" // flagErrors says it
	}
	content, err := api.ParseNotification(raw, priority, def)
	if err != nil {
		// One line a problem (errors.Join), each said of its flag.
		for _, msg := range strings.Split(err.Error(), "\n") {
			errs = append(errs, errors.New(flagNames(msg)))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return content, nil, err
	}
	// Title, body and data alone are stored as they always were, without
	// the object: a retry of a campaign sent before these flags existed
	// must compare equal, not be refused as other content.
	if c.Subtitle == "" && c.Badge == nil && c.Sound == "" && c.Image == "" && c.ThreadID == "" &&
		c.CollapseID == "" && !c.Silent && len(c.Localized) == 0 {
		return content, nil, nil
	}
	stored, err := json.Marshal(content)
	return content, stored, err
}

// flagNames says a notification error of the API ("notification.thread_id:
// ...") in send's flags ("--thread-id: ..."): its user wrote the flags, not
// the object.
func flagNames(msg string) string {
	// "notification: a title or a body is required" named the API's
	// object, which send has no flag for.
	if rest, ok := strings.CutPrefix(msg, "notification: a title or a body is required"); ok {
		if rest != "" {
			// Given, but blank: "give one" would read as if they were not.
			return "--title and --body hold only white space, which shows an empty notification: give the notification's text"
		}
		return "--title or --body: give at least one, the notification's text (or --silent for a background push)"
	}
	if rest, ok := strings.CutPrefix(msg, "notification.localized."); ok {
		return "--localized " + rest
	}
	if rest, ok := strings.CutPrefix(msg, "notification."); ok {
		field, why, _ := strings.Cut(rest, ":")
		msg = "--" + strings.ReplaceAll(field, "_", "-") + ":" + why
	}
	return strings.ReplaceAll(msg, `set "silent": false`, "leave out --silent")
}

// parseTokens reads --token PLATFORM:TOKEN into c.tokens. The platform is
// up to the first colon: an FCM token holds colons of its own.
func (c *SendCmd) parseTokens() error {
	c.tokens = nil
	for _, v := range c.Tokens {
		platform, token, ok := strings.Cut(v, ":")
		if !ok || token == "" {
			return fmt.Errorf("--token: give PLATFORM:TOKEN, such as ios:a1b2… or android:fcm-token, got %q", v)
		}
		c.tokens = append(c.tokens, campaign.Token{Platform: platform, Token: token})
	}
	return nil
}

// tokenFlag says a raw token's error ("tokens[2].token: ...") of the
// --token it came from: send's user wrote flags, not the API's list.
func (c *SendCmd) tokenFlag(err error) error {
	var ve *campaign.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var i int
	var field, why string
	if n, _ := fmt.Sscanf(ve.Msg, "tokens[%d].", &i); n != 1 || i < 0 || i >= len(c.Tokens) {
		return err
	}
	_, rest, _ := strings.Cut(ve.Msg, "].")
	field, why, _ = strings.Cut(rest, ": ")
	if field != "token" && field != "platform" {
		return err
	}
	return &campaign.ValidationError{Msg: fmt.Sprintf("--token %s: %s", c.Tokens[i], why)}
}
