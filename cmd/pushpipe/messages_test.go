package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// `pushpipe messages list` pages the direct messages newest first, as GET
// /v1/messages does, and says how to get the next page; a --before that
// names no message (a campaign's id among them) says where good ids are.
func TestMessagesList(t *testing.T) {
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	for _, m := range []campaign.Message{
		{Campaign: campaign.Campaign{ID: "m1", App: "a", Title: "Your order shipped"}, Users: []int64{1, 2}},
		{Campaign: campaign.Campaign{ID: "m2", App: "a", Title: "Table ready\nnow"}, Users: []int64{3}},
		{Campaign: campaign.Campaign{ID: "m3", App: "b", Title: "Raw"}, Tokens: []campaign.Token{{Platform: "android", Token: "fcm:x"}}},
	} {
		if _, _, err := campaign.CreateMessage(t.Context(), rdb, db, keys, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	list := func(args ...string) (string, error) {
		cli := parse(t, append([]string{"messages", "list", "--redis-addr", r.Addr, "--database-url", url}, args...)...)
		var out bytes.Buffer
		err := cli.Messages.List.run(&cli.Globals, &out)
		return out.String(), err
	}
	tests := []struct {
		name string
		args []string
		want []string // regexps, in order
		err  string
	}{
		{"a page", []string{"--limit", "2"}, []string{`(?m)^ID\s+STATE\s+TARGETS`, `(?m)^m3\s+sending\s.*\sb\s.*\sRaw\s*$`,
			`(?m)^m2\s+sending\s.*\sa\s.*\sTable ready now\s*$`, `(?m)^more: pushpipe messages list --before m2$`}, ""},
		{"the last page", []string{"--before", "m2"}, []string{`(?m)^m1\s+sending\s.*Your order shipped\s*$`}, ""},
		{"a campaign's id", []string{"--before", "c1"}, nil, `--before c1: no such message; pass the id a page prints after "more:"`},
		{"nothing", []string{"--before", "nosuch"}, nil, "--before nosuch: no such message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := list(tt.args...)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rest := out
			for _, w := range tt.want {
				loc := regexp.MustCompile(w).FindStringIndex(rest)
				if loc == nil {
					t.Fatalf("printed\n%s\nwant %s (in order)", out, w)
				}
				rest = rest[loc[1]:]
			}
			if tt.name == "the last page" && strings.Contains(out, "more:") {
				t.Errorf("the last page says there is more:\n%s", out)
			}
		})
	}
	out, err := list("--json", "--limit", "1")
	var page struct {
		Messages []map[string]any
		Next     string
	}
	if err != nil || json.Unmarshal([]byte(out), &page) != nil || len(page.Messages) != 1 || page.Messages[0]["id"] != "m3" ||
		page.Messages[0]["app"] != "b" || page.Messages[0]["state"] != "sending" || page.Next != "m3" {
		t.Errorf("--json printed %s (%v); want m3 as the API lists it and next m3", out, err)
	}
}

// A message that went nowhere says why: `messages list` printed "done 1 0
// 0 0" for a user with no device, or one who muted its category, as if
// it had been sent nowhere for no reason.
func TestMessagesListSaysWhoHadNoDevice(t *testing.T) {
	ms := []campaign.MessageSummary{
		{Report: campaign.MessageReport{ID: "m2", State: campaign.StateDone, Targets: 3, Sent: 1, Muted: 1, NoDevices: 1}, App: "a", Title: "Hi"},
		{Report: campaign.MessageReport{ID: "m1", State: campaign.StateDone, Targets: 1, NoDevices: 1}, App: "a", Title: "Hi"},
	}
	var out bytes.Buffer
	if err := (&MessagesListCmd{}).print(&out, ms, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`(?m)^ID +STATE +TARGETS +SENT +FAILED +INVALID +MUTED +NO DEVICE +APP +CREATED +TITLE$`,
		`(?m)^m2 +done +3 +1 +0 +0 +1 +1 +a `,
		`(?m)^m1 +done +1 +0 +0 +0 +0 +1 +a `,
	} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("printed\n%s\nwant %s", out.String(), want)
		}
	}
}
