package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

type messageRequest struct {
	ID           recordID             `json:"id"` // optional; "" and null are refused (idempotencyKey)
	App          string               `json:"app"`
	Users        []int64              `json:"users"`
	Tokens       []tokenRequest       `json:"tokens"`
	Category     string               `json:"category"`
	Priority     string               `json:"priority"`
	Notification *notificationRequest `json:"notification"`
	TTLSeconds   int64                `json:"ttl_seconds"`
}

type tokenRequest struct {
	Platform string `json:"platform"`
	Token    string `json:"token"`
}

// campaignFields are a campaign's fields a message has not: a message goes
// out at once to the users or tokens it lists.
var campaignFields = func() map[string]string {
	const to = "a direct message is sent at once to the users or tokens it lists; a campaign (POST /v1/campaigns) "
	hints := map[string]string{
		"send_at":         to + "can be scheduled",
		"rate_per_second": to + "can be given its own rate",
		"allow_empty":     to + "can be created for nobody",
		"channels":        "a direct message lists \"users\" or \"tokens\"; a campaign (POST /v1/campaigns) goes to channels",
	}
	maps.Copy(hints, notificationHints) // unknownfield.go: top-level fields sent inside the notification
	return hints
}()

// postMessage sends a direct message: POST /v1/messages → 202 {"id"}; the
// same id and content again → 200 {"id"} and nothing new is sent; the same
// id with other content → 409. The message rides the express lane unless
// its priority is "normal". It lists users (1–10,000) or raw tokens
// (1–1,000), never both: too many is 413, none, both or a malformed one 400
// naming it; an app the API does not know is 422 (for a new id: a retry
// of a stored one is answered from the record, campaign.Admit).
func (s *Server) postMessage(w http.ResponseWriter, r *http.Request, body []byte) {
	var req messageRequest
	if !decodeHinted(w, body, &req, campaignFields) {
		return
	}
	id, ok := idempotencyKey(w, req.ID, "message")
	if !ok {
		return
	}
	content, err := parseNotification(req.Notification, req.Priority, push.PriorityHigh)
	switch {
	case err != nil:
		writeError(w, http.StatusBadRequest, problemsLine(err))
		return
	case len(req.Users) > campaign.MaxMessageUsers:
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("users: a message lists at most %d users, got %d; split it", campaign.MaxMessageUsers, len(req.Users)))
		return
	case len(req.Tokens) > campaign.MaxMessageTokens:
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("tokens: a message lists at most %d raw tokens, got %d; split it", campaign.MaxMessageTokens, len(req.Tokens)))
		return
	}
	if max := int64(campaign.MaxTTL / time.Second); req.TTLSeconds < 0 || req.TTLSeconds > max {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("ttl_seconds: must be between 1 and %d (28 days), or 0 or left out for 24 hours; got %d", max, req.TTLSeconds))
		return
	}
	// The whole notification object, as a campaign's: deliver renders
	// both from the stored object (subtitle, badge, sound, thread, collapse
	// id, silent, localized text).
	m := campaign.Message{
		Campaign: campaign.Campaign{
			ID: id, App: req.App, Category: req.Category,
			Title: content.Title, Body: content.Body, Data: content.Data,
			TTL: time.Duration(req.TTLSeconds) * time.Second, Priority: req.Priority,
		},
		Users: req.Users,
	}
	if m.Notification, err = json.Marshal(content); err != nil {
		writeError(w, http.StatusBadRequest, "notification: "+err.Error())
		return
	}
	if req.Tokens != nil {
		m.Tokens = make([]campaign.Token, len(req.Tokens))
		for i, t := range req.Tokens {
			m.Tokens[i] = campaign.Token{Platform: t.Platform, Token: t.Token}
		}
	}
	if err := m.Normalize(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), campaignTimeout)
	defer cancel()
	// After the request's own checks, and a new message's only, as for
	// campaigns.
	m, created, err := campaign.CreateMessage(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, m, s.admitApp, s.admitPayload)
	s.answerCreated(w, "message", m.ID, http.StatusAccepted, created, err)
}

// getMessage reports a message's progress: GET /v1/messages/{id}.
func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.withRecord(w, r, "message", func(ctx context.Context, id string) (any, error) {
		return campaign.MessageProgress(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, id)
	})
}
