package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// What the operator's commands print, run as the binary with its output
// piped (no terminal), as a script or `| less` reads it:
//   - no line of a table ends in spaces (tabwriter padded the last column
//     and empty cells: every row of status, campaigns list, messages list,
//     channels list and dlq list ended in a run of them);
//   - `status ID` shows the campaign first, what was asked, then the
//     streams (it came a screen down, after the tables);
//   - `results tail --no-follow` ends with a plain line on stderr, stdout
//     holding the events alone (it was a JSON log record, piped).
func TestOperatorOutputReadsPlain(t *testing.T) {
	t.Parallel()
	bin := pipelinetest.Binary(t)
	r, rdb := testRedis(t)
	url, db := testDatabase(t)
	keys := pipeline.NewKeys("pp", pipeline.DefaultPartitions)
	if _, err := db.Exec(t.Context(), `INSERT INTO subscriptions (channel, user_id) VALUES ('news', 1), ('news', 2), ('sport', 1)`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.Create(t.Context(), rdb, db, keys, campaign.Campaign{ID: "c1", App: "a", Channels: []string{"news"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := campaign.CreateMessage(t.Context(), rdb, db, keys, campaign.Message{Campaign: campaign.Campaign{ID: "m1", App: "a", Title: "Hi"}, Users: []int64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	// One dead letter, by a real runner: dlq list has a row to print.
	if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, 0),
		Fields: []string{pipeline.FieldCampaign, "c1"}}); err != nil {
		t.Fatal(err)
	}
	deadLettering(t, rdb, keys, "deliver", pipeline.StreamDeliver, func(pipeline.Entry) error { return errors.New("no credentials") })
	q := pipeline.NewDLQ(rdb, keys)
	pipelinetest.Eventually(t, 10*time.Second, "the entry dead-lettered", func() bool {
		n, err := q.Len(t.Context())
		return err == nil && n == 1
	})
	env := append(os.Environ(), "PUSHPIPE_REDIS_ADDR="+r.Addr, "PUSHPIPE_DATABASE_URL="+url, "PUSHPIPE_PARTITIONS=16", "PUSHPIPE_PREFIX=pp")
	tests := []struct {
		args           []string
		stdout, stderr string // regexps
	}{
		// status first: the deployment's first process records its prefix.
		{[]string{"status"}, `\ASTREAM +LENGTH .*\n(?s:.*)\ndlq +1\n`, `\A\z`},
		{[]string{"status", "c1"}, `\Acampaign c1 .*\n(?s:.*)\n\nSTREAM +LENGTH `, `\A\z`},
		{[]string{"campaigns", "list"}, `\AID +STATE +PROGRESS .*\nc1 +`, `\A\z`},
		{[]string{"messages", "list"}, `\AID +STATE +TARGETS .*\nm1 +sending +0 +.* Hi\n`, `\A\z`},
		{[]string{"channels", "list"}, `\A +SUBSCRIBERS +CHANNEL\n +2 +news\n +1 +sport\n`, `\A\z`},
		// The letters, then their count by reason: the first row under
		// the header is a letter's, which a script takes (it was the
		// summary's header, COUNT).
		{[]string{"dlq", "list"}, `\AID +AGE +STREAM +ORIGINAL ID +DELIVERIES +CAMPAIGN +REASON\n\d+-\d+ +\S+ +deliver/p0 +\d+-\d+ +1 +c1 +no credentials\n` +
			`\nDead letters by stage and reason:\nCOUNT +STAGE +LATEST +REASON\n1 +deliver +\S+ ago +no credentials\n\n1 shown, 1 dead letter in total\n\z`, `\A\z`},
		{[]string{"results", "tail", "--no-follow", "--from", "0"}, `\A\z`,
			`\A0 printed of 0 events read, every one results held from the oldest kept up to the start of this command\n\z`},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, tt.args...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		name := strings.Join(tt.args, " ")
		if err != nil {
			t.Errorf("pushpipe %s: %v\n%s", name, err, stderr.String())
			continue
		}
		for what, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
			for line := range strings.Lines(out) {
				if line = strings.TrimSuffix(line, "\n"); strings.TrimRight(line, " \t") != line {
					t.Errorf("pushpipe %s: %s line %q ends in whitespace", name, what, line)
				}
			}
		}
		if !regexp.MustCompile(tt.stdout).MatchString(stdout.String()) || !regexp.MustCompile(tt.stderr).MatchString(stderr.String()) {
			t.Errorf("pushpipe %s printed\n%s\nand on stderr\n%s\nwant stdout to match %s, stderr %s", name, stdout.String(), stderr.String(), tt.stdout, tt.stderr)
		}
	}
}
