package deliver

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	camp "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/apns"
	"github.com/pushpipe/pushpipe/stages/deliver/fcm"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// CheckCampaign refuses, before it is stored, a campaign that no device
// could receive: a data key a provider reserves, or a payload that renders
// over campaign.MaxPayload bytes for APNs or FCM in any of its locales (every send of it would
// fail: APNs 413, FCM INVALID_ARGUMENT). It renders the campaign as this
// stage will: from its data as PostgreSQL gives it back, through the APNs
// and FCM senders' own renderers, so escapes count (encoding/json writes
// '<', '>' and '&' as six bytes each) and so do the numbers jsonb spells
// out. What is wrong with the campaign is a *campaign.ValidationError
// naming the provider and the size; other errors are PostgreSQL's.
func CheckCampaign(ctx context.Context, db *pgxpool.Pool, c camp.Campaign) error {
	if len(c.Data) > 0 {
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(c.Data, &keys); err != nil {
			return &camp.ValidationError{Msg: "notification.data: must be a JSON object of custom keys"}
		}
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			switch {
			case fcm.ReservedDataKey(k):
				return &camp.ValidationError{Msg: fmt.Sprintf("notification.data: key %q is reserved by FCM (from, message_type, collapse_key, notification, google*, gcm*); rename it", k)}
			case apns.ReservedKey(k):
				return &camp.ValidationError{Msg: fmt.Sprintf("notification.data: key %q is APNs's own dictionary; rename it", k)}
			}
		}
	}
	// What deliver will read: jsonb's spelling of the data (and of the
	// whole notification object, which holds them too).
	data, err := camp.StoredData(ctx, db, c.Data)
	if err != nil {
		return err
	}
	c.Data = data
	if len(c.Notification) > 0 {
		if c.Notification, err = camp.StoredData(ctx, db, c.Notification); err != nil {
			return err
		}
	}
	_, notes, err := Render(c)
	if err != nil {
		return &camp.ValidationError{Msg: "notification.data: " + err.Error()}
	}
	// Every locale's rendering must fit: the largest decides.
	for _, locale := range slices.Sorted(maps.Keys(notes)) {
		for _, p := range []struct {
			name   string
			render func(push.Notification) ([]byte, error)
		}{{"APNs", apns.Payload}, {"FCM", fcm.Payload}} {
			b, err := p.render(notes[locale])
			if err != nil {
				return &camp.ValidationError{Msg: fmt.Sprintf("notification: cannot be rendered for %s: %v", p.name, err)}
			}
			if len(b) > camp.MaxPayload {
				field := "notification"
				if locale != "" {
					field = "notification.localized." + locale
				}
				return &camp.ValidationError{Msg: fmt.Sprintf(
					"%s: renders to %d bytes for %s, over the %d it accepts (JSON escapes '<', '>' and '&' to 6 bytes each, and data numbers are written out in full); shorten the title, body or data",
					field, len(b), p.name, camp.MaxPayload)}
			}
		}
	}
	return nil
}
