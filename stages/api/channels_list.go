package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// listChannels is GET /v1/channels?limit=N&after=NAME: the channels that
// have a subscriber, by name, with their subscribers → {"channels":[...],
// "next":NAME} ("next" is absent after the last page); counts stop at
// devices.ListCountCap ("capped": true), so a page stays quick. Operators broadcast
// to channels but had no way to learn which exist, or how many people one
// reaches, short of creating a campaign.
func (s *Server) listChannels(w http.ResponseWriter, r *http.Request, _ []byte) {
	params := r.URL.Query() // checked by wrap (route.query)
	limit, ok := limitParam(w, params, devices.MaxChannelLimit, devices.DefaultChannelLimit)
	if !ok {
		return
	}
	after := params.Get("after")
	if _, given := params["after"]; given {
		// ?after= is no channel: the first page is the one without it.
		if err := devices.ValidateName("after", after); err != nil {
			writeError(w, http.StatusBadRequest, err.Error()+"; pass the \"next\" of the previous page")
			return
		}
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), devices.CountTimeout)
	defer cancel()
	page, next, err := devices.ListChannels(ctx, s.cfg.DB, after, cmp.Or(limit, devices.DefaultChannelLimit))
	if err != nil {
		s.channelsUnavailable(w, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Channels []devices.Channel `json:"channels"`
		Next     string            `json:"next,omitempty"`
	}{append([]devices.Channel{}, page...), next}) // [] for none, not null
}

// getChannel is GET /v1/channels/{channel} → {"channel","subscribers"};
// 404 for a channel nobody subscribes to (there is no other kind of
// channel to tell it from).
func (s *Server) getChannel(w http.ResponseWriter, r *http.Request, _ []byte) {
	channel := r.PathValue("channel")
	if err := devices.ValidateName("channel", channel); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.haveDB(w) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), devices.CountTimeout)
	defer cancel()
	n, err := devices.ChannelSubscribers(ctx, s.cfg.DB, channel)
	switch {
	case errors.Is(err, devices.ErrNoChannel):
		writeError(w, http.StatusNotFound, "channel "+channel+" has no subscribers: nobody subscribed, or all who did left "+
			"(GET /v1/channels lists those that have some)")
	case err != nil:
		s.channelsUnavailable(w, err)
	default:
		writeJSON(w, http.StatusOK, devices.Channel{Channel: channel, Subscribers: n})
	}
}

// channelsUnavailable answers a read of channels that failed: 503, as
// PostgreSQL holds the subscriptions and nothing else knows them.
func (s *Server) channelsUnavailable(w http.ResponseWriter, err error) {
	s.cfg.Log.Warn().Err(err).Msg("channels unavailable")
	retryLater(w, "PostgreSQL is unreachable or too slow: channels are counted from its subscriptions; retry in a moment", time.Second)
}

// limitParam reads a list route's ?limit=, from 1 to most: 0 when it is
// left out (the default page, def). It answers 400 itself, naming the
// range and the default, and reports false. A number is echoed bare:
// `got "0"` read as if the quotes were what was wrong.
func limitParam(w http.ResponseWriter, params url.Values, most, def int) (int, bool) {
	v := params.Get("limit")
	if v == "" {
		return 0, true
	}
	n, err := strconv.Atoi(v)
	if err == nil && n >= 1 && n <= most {
		return n, true
	}
	got := v
	if err != nil {
		got = strconv.Quote(devices.Echo(v))
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: must be a whole number from 1 to %d (default %d), got %s", most, def, got))
	return 0, false
}
