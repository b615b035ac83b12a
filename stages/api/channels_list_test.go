package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// channelPage is the answer of GET /v1/channels.
type channelPage struct {
	Channels []struct {
		Channel     string `json:"channel"`
		Subscribers int64  `json:"subscribers"`
		Capped      bool   `json:"capped"`
	} `json:"channels"`
	Next *string `json:"next"`
}

// newChannelsAPI is an API whose subscriptions hold only what the test
// puts there (newDeviceAPI seeds some for the campaigns' audience).
func newChannelsAPI(t *testing.T) *deviceAPI {
	t.Helper()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	if _, err := a.db.Exec(context.Background(), `DELETE FROM subscriptions`); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *deviceAPI) channels(query string) channelPage {
	a.t.Helper()
	r := a.do("GET", "/v1/channels"+query, "", "op")
	if r.status != http.StatusOK {
		a.t.Fatalf("GET /v1/channels%s: %d %s", query, r.status, r.body)
	}
	var p channelPage
	if err := json.Unmarshal([]byte(r.body), &p); err != nil {
		a.t.Fatalf("GET /v1/channels%s: %v: %s", query, err, r.body)
	}
	if p.Channels == nil {
		a.t.Fatalf("GET /v1/channels%s: no channels array: %s", query, r.body)
	}
	return p
}

func TestChannelsEmpty(t *testing.T) {
	t.Parallel()
	a := newChannelsAPI(t)
	if r := a.do("GET", "/v1/channels", "", "op"); r.status != 200 || strings.TrimSpace(r.body) != `{"channels":[]}` {
		t.Fatalf("no subscriptions: got %d %s, want 200 {\"channels\":[]}", r.status, r.body)
	}
	r := a.do("GET", "/v1/channels/news", "", "op")
	if r.status != http.StatusNotFound || !strings.Contains(r.error(), "channel news has no subscribers") {
		t.Fatalf("GET /v1/channels/news: got %d %s, want 404 saying it has no subscribers", r.status, r.body)
	}
}

// Pages follow one another by name, each channel once, with its count,
// and the last page has no next.
func TestChannelsPages(t *testing.T) {
	t.Parallel()
	a := newChannelsAPI(t)
	// 205 channels ch000..ch204; channel i has i%7+1 subscribers, and
	// "big" one more than a list counts (devices.ListCountCap): lists
	// show the cap and say so, the channel's own route counts them all.
	if _, err := a.db.Exec(context.Background(), `
		INSERT INTO subscriptions (channel, user_id)
		SELECT 'ch' || lpad(c::text, 3, '0'), u FROM generate_series(0, 204) c, generate_series(1, c % 7 + 1) u
		UNION ALL SELECT 'big', u FROM generate_series(1, $1::int) u`, devices.ListCountCap+1); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"big": devices.ListCountCap}
	for c := range 205 {
		want[fmt.Sprintf("ch%03d", c)] = int64(c%7 + 1)
	}
	tests := []struct {
		give      string
		wantPages []int // channels on each page
	}{
		{"", []int{100, 100, 6}},
		{"?limit=1000", []int{206}},
		{"?limit=103", []int{103, 103}},
		{"?limit=206", []int{206}},
		{"?limit=205", []int{205, 1}},
	}
	for _, tt := range tests {
		var pages []int
		var last string
		got := map[string]int64{}
		query := tt.give
		for {
			p := a.channels(query)
			pages = append(pages, len(p.Channels))
			for _, c := range p.Channels {
				if c.Channel <= last {
					t.Fatalf("%s: %q after %q: not in name order, or twice", tt.give, c.Channel, last)
				}
				last = c.Channel
				got[c.Channel] = c.Subscribers
				if c.Capped != (c.Channel == "big") {
					t.Errorf("%s: channel %s capped %v, want %v", tt.give, c.Channel, c.Capped, !c.Capped)
				}
			}
			if p.Next == nil {
				break
			}
			if *p.Next != last {
				t.Fatalf("%s: next %q, want the page's last channel %q", tt.give, *p.Next, last)
			}
			query = cutAfter(tt.give) + "after=" + *p.Next
			if len(pages) > 10 {
				t.Fatalf("%s: pages go on: %v", tt.give, pages)
			}
		}
		if !slices.Equal(pages, tt.wantPages) {
			t.Errorf("%s: pages of %v channels, want %v", tt.give, pages, tt.wantPages)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d channels, want %d", tt.give, len(got), len(want))
		}
		for c, n := range want {
			if got[c] != n {
				t.Errorf("%s: channel %s has %d subscribers, want %d", tt.give, c, got[c], n)
			}
		}
	}
	// after need not be a channel: the page starts past it.
	if p := a.channels("?limit=2&after=ch0995"); len(p.Channels) != 2 || p.Channels[0].Channel != "ch100" {
		t.Errorf("after=ch0995: got %+v, want ch100 first", p.Channels)
	}
	r := a.do("GET", "/v1/channels/big", "", "op")
	if r.status != 200 || strings.TrimSpace(r.body) != fmt.Sprintf(`{"channel":"big","subscribers":%d}`, devices.ListCountCap+1) {
		t.Errorf("GET /v1/channels/big: got %d %s", r.status, r.body)
	}
}

// A channel whose subscribers all left is gone: from the list and from
// GET /v1/channels/{channel}.
func TestChannelAllLeft(t *testing.T) {
	t.Parallel()
	a := newChannelsAPI(t)
	for _, path := range []string{"/v1/channels/gone/subscribers/1", "/v1/channels/gone/subscribers/2", "/v1/channels/kept/subscribers/1"} {
		if r := a.do("PUT", path, "", "op"); r.status != http.StatusNoContent {
			t.Fatalf("PUT %s: %d %s", path, r.status, r.body)
		}
	}
	if r := a.do("GET", "/v1/channels/gone", "", "op"); r.status != 200 || strings.TrimSpace(r.body) != `{"channel":"gone","subscribers":2}` {
		t.Fatalf("GET /v1/channels/gone: got %d %s", r.status, r.body)
	}
	if r := a.do("POST", "/v1/channels/gone/subscribers", `{"remove":[1,2]}`, "op"); r.status != http.StatusNoContent {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if p := a.channels(""); len(p.Channels) != 1 || p.Channels[0].Channel != "kept" || p.Next != nil {
		t.Errorf("GET /v1/channels: got %+v, want kept alone", p)
	}
	r := a.do("GET", "/v1/channels/gone", "", "op")
	if r.status != http.StatusNotFound || !strings.Contains(r.error(), "all who did left") {
		t.Errorf("GET /v1/channels/gone: got %d %s, want 404", r.status, r.body)
	}
}

func TestChannelsBadParams(t *testing.T) {
	t.Parallel()
	a := newChannelsAPI(t)
	tests := []struct{ give, want string }{
		{"/v1/channels?limit=0", "limit: must be a whole number from 1 to 1000 (default 100), got 0"},
		{"/v1/channels?limit=1001", "limit: must be a whole number from 1 to 1000 (default 100), got 1001"},
		{"/v1/channels?limit=x", `limit: must be a whole number from 1 to 1000 (default 100), got "x"`},
		{"/v1/channels?after=a%20b", "after: has only A-Z a-z 0-9 _ . : - characters; character 2 is ' '"},
		{"/v1/channels?after=", "after: must be 1–128 characters; got 0"},
		{"/v1/channels?after=" + strings.Repeat("c", 129), "after: must be 1–128 characters; got 129"},
		{"/v1/channels?before=a", `unknown query parameter "before": GET /v1/channels takes limit and after`},
		{"/v1/channels?limit=1&limit=2", `query parameter "limit" is given 2 times; give it once`},
		{"/v1/channels/a%20b", "channel: has only A-Z a-z 0-9 _ . : - characters; character 2 is ' '"},
		{"/v1/channels/news?limit=1", `unknown query parameter "limit": GET /v1/channels/news takes none`},
	}
	for _, tt := range tests {
		if r := a.do("GET", tt.give, "", "op"); r.status != http.StatusBadRequest || !strings.Contains(r.error(), tt.want) {
			t.Errorf("GET %s: got %d %s, want 400 with %q", tt.give, r.status, r.body, tt.want)
		}
	}
}

// cutAfter is a list query without its after, ready for one: "?limit=3&".
func cutAfter(q string) string {
	if q == "" {
		return "?"
	}
	return q + "&"
}
