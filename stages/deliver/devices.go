package deliver

import (
	"context"
	"hash/fnv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
	"github.com/pushpipe/pushpipe/stages/devices"
)

// device is one valid token of a user.
type device struct {
	user     int64
	platform push.Platform // "" for a platform code deliver does not know
	token    string
	mark     string // the device's member in the campaign's sent marks
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
			user: r.UserID, platform: platformOf(r.Platform), token: r.Token, mark: markOf(r.Token),
		})
	}
	return out, nil
}

// markOf is a device's member in the sent marks: 12 bytes of a 128-bit hash
// of the token instead of the token itself (tokens are 64-200 bytes, and a
// 100M-recipient campaign keeps a mark per device for its TTL). At 96 bits a
// collision within one campaign partition is below 1e-12 for 10M devices.
func markOf(token string) string {
	h := fnv.New128a()
	h.Write([]byte(token))
	var sum [16]byte
	return string(h.Sum(sum[:0])[:12])
}
