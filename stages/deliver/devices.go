package deliver

import (
	"cmp"
	"context"
	"slices"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
	"github.com/pushpipe/pushpipe/stages/devices"
)

// device is one valid token of a user.
type device struct {
	user     int64
	platform push.Platform // "" for a platform code deliver does not know
	token    string
	id       int64 // its bit in the campaign's sent marks (see bitmaps.go)
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

// loadDevices returns the valid tokens of users of one app, by user, in one
// query answered from the covering index (devices.ValidTokens). A user's
// devices are a window of one slice: rows come grouped by user when the
// lookup walks spans of users, and are sorted otherwise.
func loadDevices(ctx context.Context, db *pgxpool.Pool, app string, users []int64) (map[int64][]device, error) {
	rows, err := devices.ValidTokens(ctx, db, app, users)
	if err != nil {
		return nil, err
	}
	if !slices.IsSortedFunc(rows, byUser) {
		slices.SortFunc(rows, byUser)
	}
	all := make([]device, len(rows))
	out := make(map[int64][]device, len(users))
	for i := 0; i < len(rows); {
		j := i
		for ; j < len(rows) && rows[j].UserID == rows[i].UserID; j++ {
			r := rows[j]
			all[j] = device{user: r.UserID, platform: platformOf(r.Platform), token: r.Token, id: r.ID}
		}
		out[rows[i].UserID] = all[i:j:j]
		i = j
	}
	return out, nil
}

func byUser(a, b devices.Device) int { return cmp.Compare(a.UserID, b.UserID) }
