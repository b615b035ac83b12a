package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// errNoCampaign is permanent: a deliver entry names a campaign that does not
// exist (campaign rows are written before anything is emitted for them).
var errNoCampaign = errors.New("campaign not found")

// campaign is what deliver needs of a campaign row, rendered once.
type campaign struct {
	ID  string
	App string
	// message is true for a direct message (a campaign row of kind
	// message): its result events name it as a message.
	message bool
	// notes are its provider-neutral notifications, one per locale of its
	// notification object ("" the default text); Token, Platform and App
	// are filled per device.
	notes  map[string]push.Notification
	pick   func(device string) string // a device locale's key of notes
	picked sync.Map                   // device locale → key of notes, as picked
	// ttl is how long the campaign's sent marks are kept.
	ttl time.Duration
	// rate is the campaign's own cap (rate_per_second) as the row said
	// when it was read, 0 for none: the one field of the row that changes
	// while the campaign sends (campaign.SetRate). Deliver paces by the
	// current one (lifecycle.rate), and this only when Redis has none.
	rate int
	// accepted is when the API accepted it (the row's created_at).
	accepted time.Time
	// expires is when its notification expires (expiry.go); zero for none.
	expires time.Time
}

// campaigns caches campaign rows: every batch of a campaign needs the same
// row, and a row never changes once its campaign is sending, but for its
// rate, which is not read from here (lifecycle.rate).
type campaigns struct {
	db *pgxpool.Pool

	mu    sync.Mutex
	byID  map[string]*campaign
	order []string // insertion order, for eviction
}

const maxCachedCampaigns = 4096

func newCampaigns(db *pgxpool.Pool) *campaigns {
	return &campaigns{db: db, byID: map[string]*campaign{}}
}

// get returns the campaign, from the cache or the database. A missing row is
// errNoCampaign and is not cached.
func (cs *campaigns) get(ctx context.Context, id string) (*campaign, error) {
	if c := cs.cached(id); c != nil {
		return c, nil
	}
	c, err := cs.load(ctx, id)
	if err != nil {
		return nil, err
	}
	return cs.put(c), nil
}

// cached is the campaign if the cache holds it, else nil.
func (cs *campaigns) cached(id string) *campaign {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.byID[id]
}

// put caches c and returns the cached campaign of its id: c, or the one
// another handler cached first.
func (cs *campaigns) put(c *campaign) *campaign {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cached := cs.byID[c.ID]; cached != nil {
		return cached
	}
	if len(cs.order) >= maxCachedCampaigns {
		delete(cs.byID, cs.order[0])
		cs.order = cs.order[1:]
	}
	cs.byID[c.ID] = c
	cs.order = append(cs.order, c.ID)
	return c
}

// load reads the campaign's row through the campaign package (the one
// reader of the campaigns table) and renders it for the senders. A row
// that cannot be rendered is a permanent error.
func (cs *campaigns) load(ctx context.Context, id string) (*campaign, error) {
	row, err := campaignrow.Load(ctx, cs.db, id)
	if errors.Is(err, campaignrow.ErrNotFound) {
		return nil, fmt.Errorf("campaign %q: %w", id, errNoCampaign)
	}
	if err != nil {
		return nil, err
	}
	return fromRow(id, row)
}

// loadWithTokens reads the rows of ids, which the cache does not hold, and
// caches them, and with them the valid tokens of users[id] of each one's
// app, sorted by user: all in one PostgreSQL round trip. A campaign's first
// batch in this process, which is every batch of a direct message (each
// message is a campaign of its own), knows the app only from the row: read
// one after the other, the row and the tokens were two round trips before
// its first send, on a busy machine two waits for PostgreSQL's turn on the
// cores. failed holds, per id, the permanent error of a row missing or that
// cannot be rendered (its tokens are left out); err is the round trip's.
func (cs *campaigns) loadWithTokens(ctx context.Context, ids []string, users map[string][]int64) (tokens map[string][]device, failed map[string]error, err error) {
	if len(ids) == 0 {
		return nil, nil, nil
	}
	b := &pgx.Batch{}
	rows := make(map[string]campaignrow.Campaign, len(ids))
	tokens, failed = map[string][]device{}, map[string]error{}
	for _, id := range ids {
		campaignrow.QueueLoad(b, id, func(row campaignrow.Campaign, err error) {
			if err != nil { // ErrNotFound: QueueLoad's other errors are the batch's
				failed[id] = permanent(fmt.Errorf("campaign %q: %w", id, errNoCampaign))
				return
			}
			rows[id] = row
		})
		if us := users[id]; len(us) > 0 {
			campaignrow.QueueTokens(b, id, us, func(ds []devices.Device) { tokens[id] = fromRows(ds) })
		}
	}
	if err := cs.db.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, err
	}
	for _, id := range ids {
		row, ok := rows[id]
		if !ok {
			delete(tokens, id)
			continue
		}
		c, err := fromRow(id, row)
		if err != nil {
			failed[id] = err
			delete(tokens, id)
			continue
		}
		cs.put(c)
	}
	return tokens, failed, nil
}

// fromRow renders a campaign's row for the senders.
func fromRow(id string, row campaignrow.Campaign) (*campaign, error) {
	content, notes, err := Render(row)
	if err != nil {
		// Only a row the API did not write fails here (it stores the
		// notification it parsed, and data it checked is an object): a
		// hand-edited or foreign row, which no retry can fix. Its entries
		// are dead-lettered at once with the reason, not after
		// --max-deliveries failed batches that take good entries with them.
		return nil, permanent(fmt.Errorf("campaign %q: stored notification cannot be rendered: %w", id, err))
	}
	c := &campaign{ID: id, App: row.App, message: row.Kind == campaignrow.KindMessage, ttl: row.TTL, rate: row.RatePerSecond, accepted: row.CreatedAt,
		notes: notes, pick: content.Locale}
	if row.TTL > 0 {
		c.expires = row.ExpiresAt()
	}
	return c, nil
}

// notification is the campaign's notification for one device, in its
// locale: rendered per locale once, picked per distinct device locale once.
func (c *campaign) notification(d device) push.Notification {
	key := ""
	if len(c.notes) > 1 && d.locale != "" {
		if k, ok := c.picked.Load(d.locale); ok {
			key = k.(string)
		} else {
			key = c.pick(d.locale)
			c.picked.Store(d.locale, key)
		}
	}
	n := c.notes[key]
	n.Token, n.Platform, n.App = d.token, d.platform, c.App
	return n
}
