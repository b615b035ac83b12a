package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// `campaigns rate ID N` changes a campaign's own cap and prints its status
// line as `campaigns cancel` does (JSON with --json); its refusals say what
// the API's do, and a rate out of bounds is refused before anything is
// dialled.
func TestCampaignsRate(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	ctx := t.Context()
	for _, id := range []string{"c1", "gone"} {
		if _, _, err := campaign.Create(ctx, rdb, db, keys, campaign.Campaign{ID: id, App: "a", Channels: []string{"x"}, Title: "t", RatePerSecond: 40}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := campaign.Cancel(ctx, rdb, db, keys, "gone"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.CreateMessage(ctx, rdb, db, keys, campaign.Message{
		Campaign: campaign.Campaign{ID: "m1", App: "a", Title: "t"}, Users: []int64{1}}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		out  string // in what it prints
		err  string
		rate int // the record's then, for c1
	}{
		{"lowered", []string{"c1", "10"}, "c1  splitting", "", 10},
		{"json", []string{"c1", "25", "--json"}, `"rate_per_second":25`, "", 25},
		{"cap removed", []string{"c1", "0"}, "c1  splitting", "", 0},
		{"canceled", []string{"gone", "5"}, "", "campaign gone is already canceled: its rate can no longer change", 0},
		{"a direct message", []string{"m1", "5"}, "", "m1 is a direct message, not a campaign: a message has no rate of its own", 0},
		{"nothing", []string{"nosuch", "5"}, "", "no campaign nosuch: check the id", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"campaigns", "rate", "--redis-addr", r.Addr, "--database-url", url}, tt.args...)...)
			var out strings.Builder
			cli.Campaigns.Rate.out = &out
			err := cli.Campaigns.Rate.Run(&cli.Globals)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if !strings.Contains(out.String(), tt.out) {
				t.Errorf("printed\n%s\nwant %q", out.String(), tt.out)
			}
			if c, err := campaign.Load(ctx, db, "c1"); err != nil || c.RatePerSecond != tt.rate && tt.err == "" {
				t.Errorf("c1's record: rate %d %v, want %d", c.RatePerSecond, err, tt.rate)
			}
		})
	}
	// The status line shows the cap as the list does.
	cli := parse(t, "campaigns", "rate", "--redis-addr", r.Addr, "--database-url", url, "c1", "12")
	var out strings.Builder
	cli.Campaigns.Rate.out = &out
	if err := cli.Campaigns.Rate.Run(&cli.Globals); err != nil || !strings.Contains(out.String(), "(cap 12)") {
		t.Errorf("campaigns rate c1 12: %v\n%s\nwant its line to show (cap 12)", err, out.String())
	}
	var rep campaign.Report
	cli = parse(t, "campaigns", "rate", "--redis-addr", r.Addr, "--database-url", url, "c1", "13", "--json")
	out.Reset()
	cli.Campaigns.Rate.out = &out
	if err := cli.Campaigns.Rate.Run(&cli.Globals); err != nil || json.Unmarshal([]byte(out.String()), &rep) != nil || rep.RatePerSecond != 13 {
		t.Errorf("--json: %v %s", err, out.String())
	}

	for _, args := range [][]string{{"c1", "1000001"}, {"c1", "--", "-1"}, {"a/b", "5"}} {
		k, err := kong.New(&CLI{}, options()...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Parse(append([]string{"campaigns", "rate"}, args...)); err == nil {
			t.Errorf("campaigns rate %v: parsed, want it refused before dialling", args)
		}
	}
}
