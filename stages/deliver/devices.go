package deliver

import (
	"context"

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
// query answered from the covering index (devices.ValidTokens).
func loadDevices(ctx context.Context, db *pgxpool.Pool, app string, users []int64) (map[int64][]device, error) {
	rows, err := devices.ValidTokens(ctx, db, app, users)
	if err != nil {
		return nil, err
	}
	out := make(map[int64][]device, len(users))
	for _, r := range rows {
		out[r.UserID] = append(out[r.UserID], device{
			user: r.UserID, platform: platformOf(r.Platform), token: r.Token, id: r.ID,
		})
	}
	return out, nil
}
