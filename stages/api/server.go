// Package api is pushpipe's HTTP API: it validates requests and turns them
// into stream entries (devices, campaigns) or direct writes (subscriptions,
// preferences). It never does a stage's work itself.
package api

import (
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Config is what the API needs.
type Config struct {
	Redis rueidis.Client
	DB    *pgxpool.Pool
	Keys  pipeline.Keys
	Log   zerolog.Logger
	Auth  Auth
	// MaxBodyBytes caps request bodies (413 past it); default 8 MiB, enough
	// for a 10,000-device batch.
	MaxBodyBytes int64
	// DeviceWriteRate limits device writes (registrations and deletions; a
	// batch counts each device) per app key per second: past it, 429 with
	// Retry-After. 0 is no limit; `pushpipe api` defaults to
	// DefaultDeviceWriteRate. The operator token is never limited.
	DeviceWriteRate float64
	// Metrics registers the API's request metrics (none when nil).
	Metrics prometheus.Registerer
	// DeviceWriteBurst is how many device writes an app key may make at once;
	// default twice the rate, and at least one full batch.
	DeviceWriteBurst int
}

// Server serves the API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	auth    verifier     // auth.go: the operator token and app keys, hashed
	limits  deviceLimits // ratelimit.go: per app key device-write buckets
	dev     deviceEvents // devices.go: the event clock of device writes
	streams []string     // the ingest stream of each partition
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), auth: cfg.Auth.verifier(), streams: cfg.Keys.Streams(pipeline.StreamIngest)}
	s.limits = newDeviceLimits(cfg.Auth, cfg.DeviceWriteRate, cfg.DeviceWriteBurst)
	metrics := newAPIMetrics(cfg.Metrics)
	for _, rt := range s.routes() {
		s.mux.Handle(rt.pattern, metrics.instrument(rt.pattern, s.wrap(rt)))
	}
	return s
}

// route is one endpoint: who may call it and, for device writes, how many
// writes a request counts for in the app key's rate limit.
type route struct {
	pattern string
	scope   scope
	writes  writeCost // nil: not a device write
	handler http.HandlerFunc
}

// routes is the whole API surface in one place; every endpoint is
// authenticated (auth.go), body-capped, and device writes are rate-limited
// per app key (ratelimit.go). Handlers live in one file per resource.
func (s *Server) routes() []route {
	return []route{
		// devices: app keys allowed, for their own app only (checked per item)
		{"POST /v1/devices", scopeApp, oneDevice, s.postDevice},
		{"POST /v1/devices/batch", scopeApp, batchDevices, s.postDeviceBatch},
		{"DELETE /v1/devices/{app}/{token}", scopeApp, oneDevice, s.deleteDevice},
		// operator only
		{"PUT /v1/channels/{channel}/subscribers/{user_id}", scopeAdmin, nil, s.putSubscriber},
		{"DELETE /v1/channels/{channel}/subscribers/{user_id}", scopeAdmin, nil, s.deleteSubscriber},
		{"PUT /v1/users/{user_id}/preferences", scopeAdmin, nil, s.putPreferences},
		{"POST /v1/campaigns", scopeAdmin, nil, s.postCampaign},
		{"GET /v1/campaigns/{id}", scopeAdmin, nil, s.getCampaign},
	}
}

// wrap puts a route's handler behind authentication (401/403 first, before
// anything is read), the body cap and, for device writes, the rate limit.
func (s *Server) wrap(rt route) http.Handler {
	h := rt.handler
	if rt.writes != nil {
		h = s.limitDeviceWrites(rt.writes, h)
	}
	return s.authenticate(rt.scope, s.limitBody(h))
}

// ServeHTTP implements http.Handler. Unknown paths get a JSON 404, but only
// with a valid token: without one every request is a 401, so the API tells
// an anonymous caller nothing, not even which paths exist.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.authenticate(scopeApp, func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
		})(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Server) limitBody(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		h(w, r)
	}
}
