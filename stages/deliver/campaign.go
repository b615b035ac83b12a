package deliver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	// note is the provider-neutral notification; Token and Platform are
	// filled per device.
	note push.Notification
	// ttl is how long the campaign's sent marks are kept.
	ttl time.Duration
	// rate is the campaign's own cap (rate_per_second), 0 for none.
	rate int
	// accepted is when the API accepted it (the row's created_at).
	accepted time.Time
}

// maxCollapseID is APNs's limit on apns-collapse-id.
const maxCollapseID = 64

// collapseID is the campaign id, or a digest of it when it is longer than
// APNs accepts: a repeated request must carry the same id every time.
func collapseID(campaignID string) string {
	if len(campaignID) <= maxCollapseID {
		return campaignID
	}
	sum := sha256.Sum256([]byte(campaignID))
	return hex.EncodeToString(sum[:])
}

// campaigns caches campaign rows: every batch of a campaign needs the same
// row, and a row never changes once its campaign is sending.
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
// reader of the campaigns table) and renders it for the senders.
func (cs *campaigns) load(ctx context.Context, id string) (*campaign, error) {
	row, err := campaignrow.Load(ctx, cs.db, id)
	if errors.Is(err, campaignrow.ErrNotFound) {
		return nil, fmt.Errorf("campaign %q: %w", id, errNoCampaign)
	}
	if err != nil {
		return nil, err
	}
	c := &campaign{ID: id, App: row.App, ttl: row.TTL, rate: row.RatePerSecond, accepted: row.CreatedAt}
	if c.note, err = Note(id, row.Title, row.Body, row.Category, row.Data, c.ttl); err != nil {
		return nil, fmt.Errorf("campaign %q: %w", id, err)
	}
	return c, nil
}

// Note is the provider-neutral notification every device of a campaign
// gets (Token and Platform aside), from the campaign's row: data is the data
// column as PostgreSQL returns it.
func Note(id, title, body, category string, data []byte, ttl time.Duration) (push.Notification, error) {
	fields, err := dataFields(data)
	if err != nil {
		return push.Notification{}, err
	}
	return push.Notification{
		Title: title, Body: body, Data: fields, Category: category,
		Key:          id,
		CollapseID:   collapseID(id),
		TTL:          ttl,
		HighPriority: true, // a campaign is an alert someone should see now
	}, nil
}

// dataFields flattens the campaign's JSON object into the string map both
// providers carry (FCM data values must be strings): strings stay as they
// are, anything else becomes its JSON text.
func dataFields(raw []byte) (map[string]string, error) {
	if len(raw) == 0 {
		return nil, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("data is not a JSON object: %w", err)
	}
	if len(obj) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(obj))
	for k, v := range obj {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		} else {
			out[k] = string(v)
		}
	}
	return out, nil
}

// notification is the campaign's notification for one device.
func (c *campaign) notification(d device) push.Notification {
	n := c.note
	n.Token, n.Platform = d.token, d.platform
	return n
}
