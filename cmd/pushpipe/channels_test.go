package main

import (
	"regexp"
	"strings"
	"testing"
)

// `channels list` prints a table of the channels with their subscribers,
// a "more:" line that is the next page of the same list, and --json as
// GET /v1/channels does; `channels show` counts one, and says what to do
// for a channel nobody subscribes to. Both name their flags when wrong.
func TestChannelsListAndShow(t *testing.T) {
	url, db := testDatabase(t)
	if _, err := db.Exec(t.Context(), `
		INSERT INTO subscriptions (channel, user_id) SELECT 'news', u FROM generate_series(1, 1234) u;
		INSERT INTO subscriptions (channel, user_id) VALUES ('sport', 1), ('sport', 2), ('weather', 3)`); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string // regexps of the output, or of the error when err
		err  bool
	}{
		{"list", []string{"list"}, []string{`(?m)^\s*SUBSCRIBERS\s+CHANNEL$`, `(?m)^\s*1,234\s+news$`, `(?m)^\s*2\s+sport$`, `(?m)^\s*1\s+weather$`}, false},
		{"page", []string{"list", "--limit", "2"}, []string{`(?m)^\s*2\s+sport$`, `(?m)^more: pushpipe channels list --limit 2 --after sport$`}, false},
		{"last page", []string{"list", "--limit", "2", "--after", "sport"}, []string{`\A\s*SUBSCRIBERS\s+CHANNEL\n\s*1\s+weather\n\z`}, false},
		{"empty page", []string{"list", "--after", "zebra"}, []string{`^no channels after zebra\n$`}, false},
		{"json", []string{"list", "--limit", "1", "--json"}, []string{`^\{"channels":\[\{"channel":"news","subscribers":1234\}\],"next":"news"\}\n$`}, false},
		{"json last", []string{"list", "--after", "weather", "--json"}, []string{`^\{"channels":\[\]\}\n$`}, false},
		{"show", []string{"show", "news"}, []string{`^channel news: 1,234 subscribers\n$`}, false},
		{"show json", []string{"show", "sport", "--json"}, []string{`^\{"channel":"sport","subscribers":2\}\n$`}, false},
		{"show nobody", []string{"show", "opera"}, []string{`^channel opera has no subscribers: nobody subscribed, or all who did left \(pushpipe channels list shows those that have some\)$`}, true},
		{"limit 0", []string{"list", "--limit", "0"}, []string{`--limit: must be a whole number from 1 to 1000 \(default 100\), got 0`}, true},
		{"limit 1001", []string{"list", "--limit", "1001"}, []string{`--limit: must be a whole number from 1 to 1000 \(default 100\), got 1001`}, true},
		{"bad after", []string{"list", "--after", "a b"}, []string{`--after: has only A-Z a-z 0-9 _ \. : - characters; character 2 is ' '`}, true},
		{"bad name", []string{"show", "a/b"}, []string{`NAME: has only A-Z a-z 0-9 _ \. : - characters; character 2 is '/'`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"channels"}, tt.args...)
			kctx, err := kongParse(append(args, "--database-url", url)...)
			var out strings.Builder
			if err == nil {
				cli := kctx.Model.Target.Addr().Interface().(*CLI)
				if tt.args[0] == "list" {
					err = cli.Channels.List.run(&cli.Globals, &out)
				} else {
					err = cli.Channels.Show.run(&cli.Globals, &out)
				}
			}
			got := out.String()
			if tt.err {
				if err == nil {
					t.Fatalf("no error; printed\n%s", got)
				}
				got = err.Error()
			} else if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !regexp.MustCompile(w).MatchString(got) {
					t.Errorf("got\n%s\nwant it to match %s", got, w)
				}
			}
		})
	}
}
