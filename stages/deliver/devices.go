package deliver

import (
	"context"
	"fmt"
	"hash/fnv"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// device is one valid token of a user.
type device struct {
	user     int64
	platform push.Platform // "" for a platform code deliver does not know
	token    string
	mark     string // the device's member in the campaign's sent marks
}

// Platform codes of the devices table.
const (
	platformIOS     = 1
	platformAndroid = 2
)

func platformOf(code int16) push.Platform {
	switch code {
	case platformIOS:
		return push.IOS
	case platformAndroid:
		return push.Android
	default:
		return ""
	}
}

// loadDevices returns the valid tokens of users of one app, by user, in one
// query answered from the covering index devices_app_user_active.
func loadDevices(ctx context.Context, db *pgxpool.Pool, app string, users []int64) (map[int64][]device, error) {
	rows, err := db.Query(ctx,
		`SELECT user_id, platform, token FROM devices WHERE app = $1 AND user_id = ANY($2) AND state = 0`,
		app, users)
	if err != nil {
		return nil, fmt.Errorf("load devices of %d users: %w", len(users), err)
	}
	defer rows.Close()
	out := make(map[int64][]device, len(users))
	var (
		d    device
		code int16
	)
	for rows.Next() {
		if err := rows.Scan(&d.user, &code, &d.token); err != nil {
			return nil, fmt.Errorf("load devices: %w", err)
		}
		d.platform = platformOf(code)
		d.mark = markOf(d.token)
		out[d.user] = append(out[d.user], d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load devices of %d users: %w", len(users), err)
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
