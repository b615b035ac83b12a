package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// campaignSchedule is the lifecycle part of POST /v1/campaigns: when it
// starts, how fast it may go, and its priority.
type campaignSchedule struct {
	SendAt        string `json:"send_at"`         // RFC 3339; past or absent: now
	RatePerSecond *int64 `json:"rate_per_second"` // this campaign's own cap; absent: none
	Priority      string `json:"priority"`        // normal (default) or high
}

// apply validates the members and sets them on c.
func (cs campaignSchedule) apply(c *campaign.Campaign) error {
	if cs.SendAt != "" {
		at, err := campaign.ParseSendAt(cs.SendAt)
		if err != nil {
			return fmt.Errorf(`send_at: must be an RFC 3339 time such as "2026-01-02T15:04:05Z", got %q`, devices.Echo(cs.SendAt))
		}
		c.SendAt = at
	}
	if cs.RatePerSecond != nil {
		// 0 is checked here: Normalize reads it as no cap of its own, and
		// a number too large for an int is refused before it is one.
		if *cs.RatePerSecond <= 0 || *cs.RatePerSecond > campaign.MaxRatePerSecond {
			return fmt.Errorf("rate_per_second: must be a whole number of sends per second from 1 to %d, got %d (leave it out for no cap of its own)", campaign.MaxRatePerSecond, *cs.RatePerSecond)
		}
		c.RatePerSecond = int(*cs.RatePerSecond)
	}
	c.Priority = cs.Priority
	return nil
}

// channelNames reads a list of channels (a campaign's, a user's muted
// ones): strings, and JSON numbers read as their decimal text (channel 101
// is the channel "101" of the path /v1/channels/101/subscribers).
type channelNames []string

// UnmarshalJSON accepts an array of strings and integers.
func (cn *channelNames) UnmarshalJSON(b []byte) error {
	return readChannels(b, (*[]string)(cn), "channels")
}

// mutedChannels is channelNames for a user's muted_channels.
type mutedChannels []string

// UnmarshalJSON accepts an array of strings and integers.
func (mc *mutedChannels) UnmarshalJSON(b []byte) error {
	return readChannels(b, (*[]string)(mc), "muted_channels")
}

// readChannels reads such a list into dst; field names it in errors.
func readChannels(b []byte, dst *[]string, field string) error {
	var raw []jsontext.Value
	if err := jsonv2.Unmarshal(b, &raw, strict); err != nil {
		return err
	}
	out := make([]string, len(raw))
	for i, v := range raw {
		switch {
		case len(v) > 0 && v[0] == '"':
			if err := jsonv2.Unmarshal(v, &out[i], strict); err != nil {
				return err
			}
		case isInteger(v):
			out[i] = string(v)
		default:
			return &valueError{fmt.Sprintf("%s[%d]: must be a string or an integer, got %.40s", field, i, v)}
		}
	}
	*dst = out
	return nil
}

func isInteger(v []byte) bool {
	_, err := strconv.ParseUint(string(bytes.TrimPrefix(v, []byte("-"))), 10, 64)
	return err == nil
}

// cancelCampaign stops a campaign: POST /v1/campaigns/{id}/cancel → 200 with
// its status (state canceled; again: the same), 404 unknown, 409 when it
// is already done. Once it returns, no provider request of the campaign
// starts later than campaign.CancelPoll.
func (s *Server) cancelCampaign(w http.ResponseWriter, r *http.Request, _ []byte) {
	s.withRecord(w, r, "campaign", func(ctx context.Context, id string) (any, error) {
		rep, err := campaign.Cancel(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, id)
		switch {
		case errors.Is(err, campaign.ErrFinished):
			return nil, conflictError{"campaign " + id + " is already " + rep.State + ": there is nothing left to cancel"}
		case err == nil:
			s.cfg.Log.Info().Str("campaign", id).Int64("sent", rep.Sent).Msg("campaign canceled")
		}
		return rep, err
	})
}

// campaignPatch is the body of PATCH /v1/campaigns/{id}: what may change
// of a campaign while it goes out. Its rate alone, for now.
type campaignPatch struct {
	RatePerSecond *int64 `json:"rate_per_second"` // 0: no cap of its own
}

// patchBody caps PATCH /v1/campaigns/{id}: one small number, and room.
const patchBody = 1 << 10

// patchCampaign changes a campaign's own cap while it goes out: PATCH
// /v1/campaigns/{id} {"rate_per_second":N} → 200 with its status (the new
// rate in it), 400 for a bad body, 404 unknown (or a direct message's id),
// 409 when it is done, canceled or failed. Every deliver process paces it
// at the new rate within 1 s of the answer (campaign.RatePoll).
func (s *Server) patchCampaign(w http.ResponseWriter, r *http.Request, body []byte) {
	var req campaignPatch
	if !decode(w, body, &req) {
		return
	}
	if req.RatePerSecond == nil {
		writeError(w, http.StatusBadRequest, `rate_per_second: required, the campaign's own cap in sends per second (0 for none), as in {"rate_per_second":100}`)
		return
	}
	// Checked here, as at creation: a number too large for an int is
	// refused before it is one.
	if rate := *req.RatePerSecond; rate < 0 || rate > campaign.MaxRatePerSecond {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("rate_per_second: must be a whole number of sends per second from 0 (no cap of its own) to %d, got %d",
			campaign.MaxRatePerSecond, rate))
		return
	}
	s.withRecord(w, r, "campaign", func(ctx context.Context, id string) (any, error) {
		rep, err := campaign.SetRate(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, id, int(*req.RatePerSecond))
		switch {
		case errors.Is(err, campaign.ErrFinished):
			return nil, conflictError{"campaign " + id + " is already " + rep.State + ": its rate can no longer change"}
		case err == nil:
			s.cfg.Log.Info().Str("campaign", id).Int("rate_per_second", rep.RatePerSecond).Msg("campaign rate changed")
		}
		return rep, err
	})
}

// listCampaigns pages through campaigns, newest first:
// GET /v1/campaigns?state=S&limit=N&before=ID → {"campaigns":[...],"next":ID}
// ("next" is absent after the last page).
func (s *Server) listCampaigns(w http.ResponseWriter, r *http.Request, _ []byte) {
	params := r.URL.Query() // checked by wrap (route.query)
	limit, ok := listLimit(w, params)
	if !ok {
		return
	}
	q := campaign.ListQuery{State: params.Get("state"), Before: params.Get("before"), Limit: limit}
	if err := q.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), campaignTimeout)
	defer cancel()
	reps, next, err := campaign.List(ctx, s.cfg.Redis, s.cfg.DB, s.cfg.Keys, q)
	switch {
	case errors.Is(err, campaign.ErrNotFound):
		writeError(w, http.StatusBadRequest, "before: no campaign "+q.Before+"; pass the \"next\" of the previous page")
	case err != nil:
		s.cfg.Log.Warn().Err(err).Msg("campaign list unavailable")
		listUnavailable(w, "campaigns", err)
	default:
		page := struct {
			Campaigns []campaign.Report `json:"campaigns"`
			Next      string            `json:"next,omitempty"`
		}{reps, next}
		writeJSON(w, http.StatusOK, page)
	}
}

// listLimit reads the ?limit= of the campaigns' and messages' lists
// (limitParam).
func listLimit(w http.ResponseWriter, params url.Values) (int, bool) {
	return limitParam(w, params, campaign.MaxListLimit, campaign.DefaultListLimit)
}

// queryParams reads r's query string, which may hold each of names once:
// as the body's unknown fields, a misspelt filter (?status=running) or a
// repeated one would otherwise be ignored, and the answer would look
// filtered when it is not. It answers 400 itself and reports false.
func queryParams(w http.ResponseWriter, r *http.Request, names ...string) (url.Values, bool) {
	params, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad query string: "+devices.Echo(err.Error())+"; escape '%' as %25")
		return nil, false
	}
	for _, name := range slices.Sorted(maps.Keys(params)) {
		vs := params[name]
		switch {
		case !slices.Contains(names, name):
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q: %s %s takes %s",
				devices.Echo(name), r.Method, devices.Echo(r.URL.Path), takes(names)))
			return nil, false
		case len(vs) > 1:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("query parameter %q is given %d times; give it once", devices.Echo(name), len(vs)))
			return nil, false
		}
	}
	return params, true
}

// takes says which query parameters a route takes: "state, limit and
// before", "limit", or "none; leave the query string out".
func takes(names []string) string {
	switch len(names) {
	case 0:
		return "none; leave the query string out"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}
