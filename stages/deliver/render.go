package deliver

import (
	"encoding/json"
	"fmt"
	"time"

	camp "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// Content is the campaign's notification object: the one it was created
// with, or for a campaign of title, body and data only (pushpipe send, the
// bench) those, at high priority (a campaign is an alert someone should see
// now).
func Content(c camp.Campaign) (push.Content, error) {
	if len(c.Notification) == 0 {
		return push.Content{Text: push.Text{Title: c.Title, Body: c.Body}, Data: c.Data, Priority: push.PriorityHigh}, nil
	}
	var content push.Content
	if err := json.Unmarshal(c.Notification, &content); err != nil {
		return push.Content{}, fmt.Errorf("notification: %w", err)
	}
	return content, nil
}

// Render renders a campaign once per locale of its notification object
// ("" the default text), for every device: the platform's rendering
// happens once more per locale in the sender (by Notification.Key).
func Render(c camp.Campaign) (push.Content, map[string]push.Notification, error) {
	content, err := Content(c)
	if err != nil {
		return content, nil, err
	}
	if c.Priority != "" { // the campaign's own column decides (campaign lifecycle)
		content.Priority = c.Priority
	}
	var expires time.Time
	if c.TTL > 0 {
		expires = c.ExpiresAt()
	}
	notes := make(map[string]push.Notification, len(content.Localized)+1)
	for _, locale := range content.Locales() {
		n, err := content.Render(c.ID, locale, c.Category, expires)
		if err != nil {
			return content, nil, err
		}
		notes[locale] = n
	}
	return content, notes, nil
}
