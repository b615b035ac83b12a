package resolve

import (
	"context"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// campaignCache keeps the campaigns being resolved: every range of a
// campaign needs its category and expiry, and a campaign never changes.
type campaignCache struct {
	db *pgxpool.Pool
	mu sync.Mutex
	m  map[string]campaign.Campaign
}

const maxCachedCampaigns = 1024

func newCampaignCache(db *pgxpool.Pool) *campaignCache {
	return &campaignCache{db: db, m: map[string]campaign.Campaign{}}
}

func (cc *campaignCache) get(ctx context.Context, id string) (campaign.Campaign, error) {
	cc.mu.Lock()
	c, ok := cc.m[id]
	cc.mu.Unlock()
	if ok {
		return c, nil
	}
	c, err := campaign.Load(ctx, cc.db, id)
	if err != nil {
		return c, err
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if len(cc.m) >= maxCachedCampaigns {
		clear(cc.m) // campaigns are few at a time; starting over is fine
	}
	cc.m[id] = c
	return c, nil
}
