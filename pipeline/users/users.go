// Package users is what pushpipe holds about one user, read or erased in one
// call (GET and DELETE /v1/users/{id}, `pushpipe users show|delete`): the
// devices (pipeline/devices), the channels subscribed to and the mutes
// (pipeline/prefs). It owns no table; each package keeps its own SQL.
package users

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/pipeline/prefs"
)

// MaxListed bounds the devices, and the channels, a View lists: a support
// lookup must not read a million rows because a test account registered a
// device per CI run.
const MaxListed = 1000

// Device is a device row as the API shows it.
type Device struct {
	App       string    `json:"app"`
	Platform  string    `json:"platform"` // "" for a tombstone of a token never registered
	Token     string    `json:"token"`
	Locale    string    `json:"locale"`
	State     string    `json:"state"`    // active, deleted, invalidated
	EventAt   time.Time `json:"event_at"` // the time of the event that made the row what it is
	UpdatedAt time.Time `json:"updated_at"`
}

// Preferences are the user's mutes, as GET /v1/users/{id}/preferences gives them.
type Preferences struct {
	MutedChannels   []string `json:"muted_channels"`
	MutedCategories []string `json:"muted_categories"`
}

// View is everything about one user; a user never seen is a View of
// empty lists (ids are not registered anywhere, so unknown is empty).
type View struct {
	UserID       int64       `json:"user_id"`
	Devices      []Device    `json:"devices"`
	DevicesMore  bool        `json:"devices_more"` // more than MaxListed rows: Devices are the first by (app, token)
	Channels     []string    `json:"channels"`
	ChannelsMore bool        `json:"channels_more"`
	Preferences  Preferences `json:"preferences"`
	// ErasedAt is the user's last erasure, if any: registrations accepted
	// before it are dropped by ingest.
	ErasedAt *time.Time `json:"erased_at"`
}

// stateNames are the device states' names in a View.
var stateNames = map[devices.State]string{devices.Active: "active", devices.Deleted: "deleted", devices.Invalidated: "invalidated"}

// Show reads user's devices, channels, mutes and erasure from PostgreSQL,
// in one batch: one round trip and one snapshot, where the four reads one
// after another were four round trips (a support lookup waited for each).
func Show(ctx context.Context, db *pgxpool.Pool, user int64) (View, error) {
	v := View{UserID: user, Devices: []Device{}}
	var (
		b pgx.Batch
		u devices.User
		p prefs.Prefs
	)
	devices.QueueUser(&b, user, MaxListed, &u)
	prefs.QueueGet(&b, user, &p)
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return v, fmt.Errorf("read user %d: %w", user, err)
	}
	for _, r := range u.Devices {
		v.Devices = append(v.Devices, Device{App: r.App, Platform: r.Platform.String(), Token: r.Token, Locale: r.Locale,
			State: stateNames[r.State], EventAt: r.EventAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()})
	}
	v.DevicesMore = u.DevicesMore
	v.Channels, v.ChannelsMore = nonNil(u.Channels), u.ChannelsMore
	v.Preferences = Preferences{MutedChannels: p.Channels, MutedCategories: p.Categories}
	if !u.ErasedAt.IsZero() {
		erased := u.ErasedAt.UTC()
		v.ErasedAt = &erased
	}
	return v, nil
}

// Erasure is what Erase did.
type Erasure struct {
	UserID   int64     `json:"user_id"`
	ErasedAt time.Time `json:"erased_at"`
	// DevicesQueued is how many device rows got a delete event in the
	// ingest stream: ingest applies them (state deleted, the user's id
	// removed) as it does DELETE /v1/devices.
	DevicesQueued   int      `json:"devices_queued"`
	ChannelsRemoved []string `json:"channels_removed"`
	MutesRemoved    int      `json:"mutes_removed"`
}

// emitChunk is how many delete events one pipelined XADD call carries.
const emitChunk = 1000

// Erase erases user as of at (unix microseconds; the caller's device event
// clock): it records the erasure, so ingest drops the user's registrations
// accepted before it even if they are still queued, queues a delete event
// for every device row of the user, and removes the user's subscriptions
// and mutes. Every step is idempotent, so after an error the whole call is
// repeated.
func Erase(ctx context.Context, db *pgxpool.Pool, rdb rueidis.Client, keys pipeline.Keys, user int64, at int64) (Erasure, error) {
	e, err := devices.Erase(ctx, db, user, at)
	if err != nil {
		return Erasure{}, err
	}
	out := Erasure{UserID: user, ErasedAt: time.UnixMicro(e.At).UTC()}
	for chunk := range slices.Chunk(e.Tokens, emitChunk) {
		msgs := make([]pipeline.Message, len(chunk))
		for i, ev := range chunk {
			msgs[i] = ev.Message(keys)
		}
		if _, err := pipeline.Emit(ctx, rdb, msgs...); err != nil {
			return out, fmt.Errorf("queue the deletion of user %d's devices: %w", user, err)
		}
		out.DevicesQueued += len(chunk)
	}
	if out.ChannelsRemoved, err = devices.Unsubscribe(ctx, db, user); err != nil {
		return out, err
	}
	out.ChannelsRemoved = nonNil(out.ChannelsRemoved)
	slices.Sort(out.ChannelsRemoved)
	if out.MutesRemoved, err = prefs.Erase(ctx, db, rdb, keys, user); err != nil {
		return out, err
	}
	return out, nil
}

// nonNil is s, or an empty list for JSON's [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
