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
	return fromRows(rows), nil
}

// fromRows are devices of rows, sorted by user.
func fromRows(rows []devices.Device) []device {
	// Rows come grouped by user when the lookup walks spans of users.
	if !slices.IsSortedFunc(rows, byUser) {
		slices.SortFunc(rows, byUser)
	}
	out := make([]device, len(rows))
	for i, r := range rows {
		out[i] = device{user: r.UserID, platform: platformOf(r.Platform), token: r.Token, id: r.ID, locale: r.Locale}
	}
	return out
}

func byUser(a, b devices.Device) int { return cmp.Compare(a.UserID, b.UserID) }

// devicesOfUser is the window of sorted that holds user's devices,
// looked for from sorted[from:] when its first device's user is not past
// user, and the index after the window (the next call's from). A batch's
// targets mostly ascend, so each device is passed over once instead of a
// binary search per user (a fifth of devicesOf's CPU when it was).
func devicesOfUser(sorted []device, user int64, from int) ([]device, int) {
	i := min(from, len(sorted))
	// A few steps forward, else a search: targets out of order cost
	// no more than before.
	for n := 0; i < len(sorted) && sorted[i].user < user && n < 8; n++ {
		i++
	}
	if i == len(sorted) || sorted[i].user != user {
		i, _ = slices.BinarySearchFunc(sorted, user, func(d device, u int64) int { return cmp.Compare(d.user, u) })
	}
	j := i
	for j < len(sorted) && sorted[j].user == user {
		j++
	}
	return sorted[i:j:j], j
}
