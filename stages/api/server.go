// Package api is pushpipe's HTTP API: it validates requests and turns them
// into stream entries (devices, campaigns) or direct writes (subscriptions,
// preferences). It never does a stage's work itself.
package api

import (
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
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
}

// Server serves the API.
type Server struct {
	cfg Config
	mux *http.ServeMux
	dev deviceEvents // devices.go: the event clock of device writes
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 8 << 20
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s
}

// routes is the whole API surface in one place. Handlers live in one file per
// resource; scope checks are in auth.go.
func (s *Server) routes() {
	// devices: app keys allowed, for their own app only (checked per item)
	s.handle("POST /v1/devices", scopeApp, s.postDevice)
	s.handle("POST /v1/devices/batch", scopeApp, s.postDeviceBatch)
	s.handle("DELETE /v1/devices/{app}/{token}", scopeApp, s.deleteDevice)
	// operator only
	s.handle("PUT /v1/channels/{channel}/subscribers/{user_id}", scopeAdmin, s.putSubscriber)
	s.handle("DELETE /v1/channels/{channel}/subscribers/{user_id}", scopeAdmin, s.deleteSubscriber)
	s.handle("PUT /v1/users/{user_id}/preferences", scopeAdmin, s.putPreferences)
	s.handle("POST /v1/campaigns", scopeAdmin, s.postCampaign)
	s.handle("GET /v1/campaigns/{id}", scopeAdmin, s.getCampaign)
}

func (s *Server) handle(pattern string, scope scope, h http.HandlerFunc) {
	s.mux.Handle(pattern, s.authenticate(scope, s.limitBody(h)))
}

// ServeHTTP implements http.Handler. Unknown paths get a JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
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
