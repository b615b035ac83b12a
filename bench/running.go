package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// Running is a launched pipeline: its processes and its clients.
type Running struct {
	Fleet    *Fleet
	Fake     *FakeProvider
	Keys     pipeline.Keys
	InFlight int // deliver's --in-flight
	rdb      rueidis.Client
	db       *pgxpool.Pool
	servers  *Servers
}

// StopProcs stops every process (idempotent).
func (r *Running) StopProcs() {
	if r.Fleet != nil {
		r.Fleet.StopAll(15 * time.Second)
	}
}

// StopStages stops every process but the fake provider, all at once.
func (r *Running) StopStages() {
	var wg sync.WaitGroup
	for _, p := range r.Fleet.Procs() {
		if p.Role != "fakeprovider" {
			wg.Go(func() { p.Stop(15 * time.Second) })
		}
	}
	wg.Wait()
}

// Stop stops every process and closes the clients.
func (r *Running) Stop() {
	r.StopProcs()
	if r.rdb != nil {
		r.rdb.Close()
		r.rdb = nil
	}
	if r.db != nil {
		r.db.Close()
		r.db = nil
	}
}

// Trigger creates the campaign and returns the trigger time.
func (r *Running) Trigger(ctx context.Context, c campaign.Campaign) (time.Time, error) {
	t0 := time.Now()
	if _, _, err := campaign.Create(ctx, r.rdb, r.db, r.Keys, c); err != nil {
		return t0, fmt.Errorf("create campaign: %w", err)
	}
	return t0, nil
}
