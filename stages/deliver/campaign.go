package deliver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	campaignrow "github.com/pushpipe/pushpipe/pipeline/campaign"
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
	cs.mu.Lock()
	c := cs.byID[id]
	cs.mu.Unlock()
	if c != nil {
		return c, nil
	}
	c, err := cs.load(ctx, id)
	if err != nil {
		return nil, err
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cached := cs.byID[id]; cached != nil {
		return cached, nil
	}
	if len(cs.order) >= maxCachedCampaigns {
		delete(cs.byID, cs.order[0])
		cs.order = cs.order[1:]
	}
	cs.byID[id] = c
	cs.order = append(cs.order, id)
	return c, nil
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
