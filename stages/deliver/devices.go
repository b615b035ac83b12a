package deliver

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// device is one valid token of a user.
type device struct {
	user     int64
	platform push.Platform // "" for a platform code deliver does not know
	token    string
	id       int64  // its bit in the campaign's sent marks (see bitmaps.go)
	locale   string // picks the campaign's text (campaign.notification)
	raw      bool   // a message's raw token: no registry row, user 0 (rawtokens.go)
}

func platformOf(p devices.Platform) push.Platform {
	switch p {
	case devices.IOS:
		return push.IOS
	case devices.Android:
		return push.Android
	default:
		return ""
	}
}

// loadDevices returns the valid tokens of users of one app, sorted by user,
// in one query answered from the covering index (devices.ValidTokens).
func loadDevices(ctx context.Context, db *pgxpool.Pool, app string, users []int64) ([]device, error) {
	rows, err := devices.ValidTokens(ctx, db, app, users)
	if err != nil {
		return nil, err
	}
	// Rows come grouped by user when the lookup walks spans of users.
	if !slices.IsSortedFunc(rows, byUser) {
		slices.SortFunc(rows, byUser)
	}
	out := make([]device, len(rows))
	for i, r := range rows {
		out[i] = device{user: r.UserID, platform: platformOf(r.Platform), token: r.Token, id: r.ID, locale: r.Locale}
	}
	return out, nil
}

func byUser(a, b devices.Device) int { return cmp.Compare(a.UserID, b.UserID) }

// devicesOfUser is the window of sorted that holds user's devices.
func devicesOfUser(sorted []device, user int64) []device {
	i, _ := slices.BinarySearchFunc(sorted, user, func(d device, u int64) int { return cmp.Compare(d.user, u) })
	j := i
	for j < len(sorted) && sorted[j].user == user {
		j++
	}
	return sorted[i:j:j]
}
