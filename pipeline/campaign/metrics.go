package campaign

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// ProgressMetrics export, at each scrape, the campaigns not over yet: how
// many per state, and over those splitting or running, the people they
// are to reach and have reached (Reached), so a panel shows their progress
// and the people left.
//
// Totals, not a series per campaign: campaign ids are the operator's, one
// per campaign ever sent, and a series per id would leave the time series
// database a series per campaign forever; the console shows each
// campaign's own progress. Read at the scrape, from PostgreSQL's index of
// campaigns not over (campaigns_active) and one pipelined Redis call, so
// nothing is kept up to date between scrapes and a finished campaign
// leaves the totals at the next one. The API exports them: every replica
// the same values (a panel takes max).
type ProgressMetrics struct {
	rdb  rueidis.Client
	db   *pgxpool.Pool
	keys pipeline.Keys

	mu      sync.Mutex // one read at a time: concurrent scrapes wait for it
	active  *prometheus.GaugeVec
	targets prometheus.Gauge
	reached prometheus.Gauge
	errors  prometheus.Counter
}

// maxCounted bounds the campaigns whose counters a scrape reads (the
// newest): more running at once is not a launch's dashboard any more, and
// the scrape must stay one small call. They are all counted in active.
const maxCounted = 200

// scrapeTimeout bounds a scrape's reads: a Redis or PostgreSQL that does
// not answer leaves the series out of that scrape, not the scrape hanging.
const scrapeTimeout = 3 * time.Second

// NewProgressMetrics reads the campaigns from db and their counters from
// rdb; register it on the API's registry.
func NewProgressMetrics(rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys) *ProgressMetrics {
	return &ProgressMetrics{rdb: rdb, db: db, keys: keys,
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "campaigns",
			Name: "active", Help: "Campaigns not over yet, by state (scheduled, splitting, running)."}, []string{"state"}),
		targets: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "campaigns",
			Name: "active_targets", Help: "People the splitting and running campaigns are to reach (their targets, or while split cuts them their audience)."}),
		reached: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "pushpipe", Subsystem: "campaigns",
			Name: "active_reached", Help: "People the splitting and running campaigns have reached: sent to, failed for good, muted or a repeat suppressed."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "pushpipe", Subsystem: "campaigns",
			Name: "progress_read_errors_total", Help: "Scrapes whose campaign progress could not be read (PostgreSQL or Redis): their campaign series were left out."}),
	}
}

// Describe implements prometheus.Collector.
func (m *ProgressMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.active.Describe(ch)
	m.targets.Describe(ch)
	m.reached.Describe(ch)
	m.errors.Describe(ch)
}

// Collect implements prometheus.Collector: it reads the campaigns now.
func (m *ProgressMetrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if err := m.read(ctx); err != nil {
		m.errors.Inc()
	} else {
		m.active.Collect(ch)
		m.targets.Collect(ch)
		m.reached.Collect(ch)
	}
	m.errors.Collect(ch)
}

// read sets the gauges from the campaigns not over.
func (m *ProgressMetrics) read(ctx context.Context) error {
	rows, err := m.db.Query(ctx, `
		SELECT id, state FROM campaigns
		WHERE kind = 'campaign' AND state IN ('scheduled', 'splitting', 'running')
		ORDER BY created_at DESC`)
	if err != nil {
		return fmt.Errorf("campaigns not over: %w", err)
	}
	count := map[string]int{StateScheduled: 0, StateSplitting: 0, StateRunning: 0}
	var sending []string
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			rows.Close()
			return fmt.Errorf("campaigns not over: %w", err)
		}
		if state != StateScheduled && len(sending) < maxCounted {
			sending = append(sending, id)
			continue // counted by the state its counters show
		}
		count[state]++
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("campaigns not over: %w", err)
	}
	lives, err := countersOf(ctx, m.rdb, m.keys, sending)
	if err != nil {
		return err
	}
	var targets, reached int64
	for _, l := range lives {
		// The table says running until a reader records the done the
		// counters show, or the cancel its flag shows (progressFrom): a
		// campaign whose counters are done, or whose flag is set, is over.
		if l.State == StateDone || l.Canceled {
			continue
		}
		count[l.State]++
		r, of := Reached(l.State, l.Counts, l.UsersDone, l.Audience)
		targets, reached = targets+of, reached+r
	}
	for state, n := range count {
		m.active.WithLabelValues(state).Set(float64(n))
	}
	m.targets.Set(float64(targets))
	m.reached.Set(float64(reached))
	return nil
}
