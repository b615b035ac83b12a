package campaign

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// AllowEmptyAdvice is CheckAudience's way out, said of the API's request:
// the console and the CLI replace it with their own (the form's box,
// send's --allow-empty), whose users write no JSON.
const AllowEmptyAdvice = `send "allow_empty": true`

// CheckAudience refuses a campaign nobody could receive: its app has no
// active device, or one of its channels has no subscriber. Such a campaign
// is almost always a typo (a wrong app id, "sport" for "sports") that would
// otherwise be reported done 0/0 as if it had worked. The caller skips the
// check when the request says "allow_empty": true (a campaign created
// before its audience, on purpose). The error is a *ValidationError.
//
// It is an Admit's check (its callers pass it to Create as one): a
// campaign already stored under c.ID is Create's to answer from its row
// (200 for the same campaign, 409 for other content) whatever its audience
// has become since. People leave a one-off channel and tokens die once it
// is sent, and a campaign stored but not queued (ErrNotQueued) must stay
// startable by the retry its 503 asks for.
func CheckAudience(ctx context.Context, db *pgxpool.Pool, c Campaign) error {
	hasDevices, empty, err := devices.Audience(ctx, db, c.App, c.Channels)
	if err != nil {
		return err
	}
	var parts []string
	if !hasDevices {
		parts = append(parts, fmt.Sprintf("app %q has no registered devices", c.App))
	}
	if len(empty) > 0 {
		parts = append(parts, fmt.Sprintf("channels %q have no subscribers", empty))
	}
	if len(parts) == 0 {
		return nil
	}
	return invalid("%s: nobody would receive this campaign; check the names, or %s to create it anyway",
		strings.Join(parts, " and "), AllowEmptyAdvice)
}
