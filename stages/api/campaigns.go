package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// campaignTimeout bounds a campaign request's PostgreSQL and Redis work.
const campaignTimeout = 5 * time.Second

type campaignRequest struct {
	ID           recordID             `json:"id"` // optional; "" and null are refused (idempotencyKey)
	App          string               `json:"app"`
	Channels     channelNames         `json:"channels"`
	Category     string               `json:"category"`
	Notification *notificationRequest `json:"notification"`
	TTLSeconds   int64                `json:"ttl_seconds"`
	AllowEmpty   bool                 `json:"allow_empty"` // campaign.CheckAudience

	campaignSchedule `json:",inline"` // campaigns_lifecycle.go: send_at, rate_per_second, priority
}

// postCampaign creates a campaign: POST /v1/campaigns → 201 {"id"}; the same
// id again → 200 {"id"} and nothing new is sent; the same id with other
// content → 409.
func (s *Server) postCampaign(w http.ResponseWriter, r *http.Request, body []byte) {
	var req campaignRequest
	if !decodeHinted(w, body, &req, notificationHints) {
		return
	}
	id, ok := idempotencyKey(w, req.ID, "campaign")
	if !ok {
		return
	}
	content, err := parseNotification(req.Notification, req.Priority, push.PriorityNormal)
	if err != nil {
		writeError(w, http.StatusBadRequest, problemsLine(err))
		return
	}
	if max := int64(campaign.MaxTTL / time.Second); req.TTLSeconds < 0 || req.TTLSeconds > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl_seconds: must be between 1 and %d (28 days), or 0 or left out for 24 hours; got %d", max, req.TTLSeconds))
		return
	}
	c := campaign.Campaign{
		ID: id, App: req.App, Channels: req.Channels, Category: req.Category,
		Title: content.Title, Body: content.Body, Data: content.Data,
		TTL: time.Duration(req.TTLSeconds) * time.Second,
	}
	if err := req.apply(&c); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if c.Notification, err = json.Marshal(content); err != nil {
		writeError(w, http.StatusBadRequest, "notification: "+err.Error())
		return
	}
	if err := c.Normalize(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), campaignTimeout)
	defer cancel()
	// After the request's own checks (a malformed request, no app
	// included, is 400 whatever its app), and a new campaign's only: a
	// retry of a stored id is answered from its record (campaign.Admit).
	admit := []campaign.Admit{s.admitApp, s.admitPayload}
	if !req.AllowEmpty {
		admit = append(admit, func(ctx context.Context, c campaign.Campaign) error { return campaign.CheckAudience(ctx, s.cfg.DB, c) })
	}
	c, created, err := campaign.Create(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, c, admit...)
	s.answerCreated(w, "campaign", c.ID, http.StatusCreated, created, err)
}

// getCampaign reports a campaign's progress: GET /v1/campaigns/{id}.
func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.withRecord(w, r, "campaign", func(ctx context.Context, id string) (any, error) {
		return campaign.Progress(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, id)
	})
}
