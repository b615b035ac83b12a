package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/ingest"
	"github.com/pushpipe/pushpipe/stages/split"
)

// dlqRedis is a client of the package's Redis and keys of prefix (4
// partitions).
func dlqRedis(t *testing.T, prefix string) (rueidis.Client, pipeline.Keys) {
	t.Helper()
	redis, _ := testRedis(t)
	rdb, err := pipeline.NewRedis(redis.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Close)
	return rdb, pipeline.NewKeys(prefix, 4)
}

// deadLettering runs, until the test ends, a real runner of stage on stream
// that dead-letters every entry it reads, for the reason why gives.
func deadLettering(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, stage, stream string, why func(pipeline.Entry) error) {
	t.Helper()
	running(t, rdb, keys, stage, stream, pipeline.HandlerFunc(func(_ context.Context, b *pipeline.Batch) error {
		for i, e := range b.Entries {
			b.DeadLetter(i, why(e))
		}
		return nil
	}))
}

// deadLettered emits msgs and has stage, reading stream, dead-letter each
// with its "reason" field, then waits for the DLQ to hold them all.
func deadLettered(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, stage, stream string, msgs ...pipeline.Message) *pipeline.DLQ {
	t.Helper()
	if _, err := pipeline.Emit(t.Context(), rdb, msgs...); err != nil {
		t.Fatal(err)
	}
	deadLettering(t, rdb, keys, stage, stream, func(e pipeline.Entry) error { return errors.New(e.Fields["reason"]) })
	q := pipeline.NewDLQ(rdb, keys)
	pipelinetest.Eventually(t, 10*time.Second, "every entry dead-lettered", func() bool {
		n, err := q.Len(t.Context())
		return err == nil && n == int64(len(msgs))
	})
	return q
}

// running runs, until the test ends, a real runner of stage on stream with
// the handler h.
func running(t *testing.T, rdb rueidis.Client, keys pipeline.Keys, stage, stream string, h pipeline.Handler) {
	t.Helper()
	r := pipeline.NewRunner(rdb, keys, pipeline.Options{Stage: stage, Stream: stream, Consumer: stage + "-1",
		Block: 50 * time.Millisecond, ShutdownTimeout: 100 * time.Millisecond}, h, zerolog.Nop(), nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// `pushpipe dlq list` counts the dead letters by stage and reason after
// it lists them: after an outage the list was thousands of lines of a few
// causes, one by one, and the count of each was what on-call needed. The
// counts are of every matching letter, not of the --limit listed. They
// come after the letters: first, a script that took the first row under
// the header got the summary's "COUNT" header, and a terminal scrolled
// them away under a --limit of letters. The last line says how many were
// shown, and under a filter how many match beside how many the DLQ holds:
// it said only the DLQ's total, read as that many letters of the campaign
// asked for.
func TestDLQListSummarisesByReason(t *testing.T) {
	rdb, keys := dlqRedis(t, "dlqsum")
	// Real runners dead-letter each entry with the reason it carries.
	letters := []struct {
		stream, reason, campaign string
		n                        int
	}{
		{pipeline.StreamDeliver, "no credentials", "c1", 5},
		{pipeline.StreamDeliver, "payload renders to 5000 bytes, over 4096", "c2", 3},
		{pipeline.StreamDedupe, "no credentials", "c1", 2},
	}
	var msgs []pipeline.Message
	for _, l := range letters {
		for i := range l.n {
			msgs = append(msgs, pipeline.Message{Stream: keys.Stream(l.stream, i%keys.Partitions),
				Fields: []string{"reason", l.reason, pipeline.FieldCampaign, l.campaign}})
		}
	}
	if _, err := pipeline.Emit(t.Context(), rdb, msgs...); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"deliver", "dedupe"} {
		deadLettering(t, rdb, keys, stage, stage, func(e pipeline.Entry) error { return errors.New(e.Fields["reason"]) })
	}
	q := pipeline.NewDLQ(rdb, keys)
	pipelinetest.Eventually(t, 10*time.Second, "every entry dead-lettered", func() bool {
		n, err := q.Len(t.Context())
		return err == nil && n == int64(len(msgs))
	})

	tests := []struct {
		name  string
		give  []string
		want  []string // the summary's rows, COUNT STAGE and REASON, in order
		shown string   // the last line
		rows  int      // letters listed
	}{
		{"all", []string{"--limit", "2"}, []string{
			"5 deliver no credentials",
			"3 deliver payload renders to 5000 bytes, over 4096",
			"2 dedupe no credentials",
		}, "2 shown, 10 dead letters in total", 2},
		{"one stream", []string{"--stream", "deliver"}, []string{
			"5 deliver no credentials",
			"3 deliver payload renders to 5000 bytes, over 4096",
		}, "8 shown of 8 matching, 10 dead letters in total", 8},
		{"one stream, limited", []string{"--stream", "deliver", "--limit", "3"}, []string{
			"5 deliver no credentials",
			"3 deliver payload renders to 5000 bytes, over 4096",
		}, "3 shown of 8 matching, 10 dead letters in total", 3},
		{"one campaign, limited", []string{"--campaign", "c1", "--limit", "4"}, []string{
			"5 deliver no credentials",
			"2 dedupe no credentials",
		}, "4 shown of 7 matching, 10 dead letters in total", 4},
		{"one stream and campaign", []string{"--stream", "dedupe", "--campaign", "c1"}, []string{
			"2 dedupe no credentials",
		}, "2 shown of 2 matching, 10 dead letters in total", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli := parse(t, append([]string{"dlq", "list"}, tt.give...)...)
			var out bytes.Buffer
			if err := cli.DLQ.List.run(t.Context(), q, &out); err != nil {
				t.Fatal(err)
			}
			list, summary, ok := strings.Cut(out.String(), "\n\nDead letters by stage and reason:\nCOUNT ")
			summary, _, _ = strings.Cut(summary, "\n\n")
			if !ok {
				t.Fatalf("no summary after the list:\n%s", out.String())
			}
			// The header, then a letter a line: the first row is the
			// oldest letter's.
			letter := regexp.MustCompile(`^\d+-\d+ +\S+ +(deliver|dedupe)/p\d `)
			lines := strings.Split(list, "\n")
			if !strings.HasPrefix(lines[0], "ID ") || len(lines) != 1+tt.rows {
				t.Fatalf("list: want the header and %d letters before the summary:\n%s", tt.rows, out.String())
			}
			for _, l := range lines[1:] {
				if !letter.MatchString(l) {
					t.Fatalf("row %q is not a dead letter:\n%s", l, out.String())
				}
			}
			var got []string
			row := regexp.MustCompile(`^(\S+)\s+(\S+)\s+\S+ ago\s+(.*)$`)
			for _, l := range strings.Split(summary, "\n")[1:] {
				m := row.FindStringSubmatch(l)
				if m == nil {
					t.Fatalf("summary row %q is not COUNT STAGE LATEST REASON:\n%s", l, out.String())
				}
				got = append(got, m[1]+" "+m[2]+" "+strings.TrimSpace(m[3]))
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("summary rows:\n%s\nwant:\n%s\nin:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"), out.String())
			}
			if !strings.HasSuffix(out.String(), "\n"+tt.shown+"\n") {
				t.Errorf("list does not end %q:\n%s", tt.shown, out.String())
			}
		})
	}

	// A DLQ of millions is counted up to a cap, and says so only when the
	// cap cut the count.
	caps := []struct {
		give   int
		read   int64
		capped bool
	}{{4, 4, true}, {10, 10, false}, {0, 10, false}}
	for _, tt := range caps {
		s, err := q.Summary(t.Context(), pipeline.DLQFilter{}, tt.give)
		if err != nil {
			t.Fatal(err)
		}
		if s.Read != tt.read || s.Capped != tt.capped {
			t.Errorf("Summary(max %d) read %d, capped %v; want %d, %v", tt.give, s.Read, s.Capped, tt.read, tt.capped)
		}
	}
	// The matching count is the summary's, so it is bounded as the summary
	// is: past the cap it is a lower bound, and says so.
	capped := pipeline.DLQSummary{Read: dlqSummaryMax, Capped: true}
	if got, want := shownLine(100, true, capped, 2_000_000), "100 shown of over 100,000 matching, 2,000,000 dead letters in total"; got != want {
		t.Errorf("a capped count under a filter: got %q, want %q", got, want)
	}
}

// A --group that names no group says which groups there are, in list,
// retry and drop alike: a misspelt group matched nothing and read as an
// empty DLQ. A stage's group, or a receiver's reading results, is no
// error even with no letters.
func TestDLQNamesTheGroupsThereAre(t *testing.T) {
	rdb, keys := dlqRedis(t, "dlqgroups")
	if err := rdb.Do(t.Context(), rdb.B().XgroupCreate().Key(keys.Stream(pipeline.StreamResults, 1)).Group("analytics").Id("$").Mkstream().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	q := deadLettered(t, rdb, keys, "deliver", pipeline.StreamDeliver,
		pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, 0), Fields: []string{"reason", "no credentials"}})
	unknown := `--group "nosuch": no consumer group of that name, nor dead letters of one; ` +
		`the groups are the stages' ingest, split, resolve, dedupe, deliver, webhook; webhook receivers' analytics`
	run := map[string]func(cli *CLI) error{
		"list": func(cli *CLI) error { return cli.DLQ.List.run(t.Context(), q, io.Discard) },
		"drop": func(cli *CLI) error {
			f, err := cli.DLQ.Drop.filter()
			if err != nil {
				return err
			}
			return applyTo(t.Context(), q, f, "dropped", (*pipeline.DLQ).Drop, io.Discard, io.Discard)
		},
		"retry": func(cli *CLI) error {
			f, err := cli.DLQ.Retry.filter()
			if err != nil {
				return err
			}
			return applyTo(t.Context(), q, f, "retried", (*pipeline.DLQ).Retry, io.Discard, io.Discard)
		},
	}
	tests := []struct {
		give []string
		want string // the error; "" for none
	}{
		{[]string{"dlq", "list", "--group", "nosuch"}, unknown},
		{[]string{"dlq", "list", "--group", "nosuch", "--json"}, unknown},
		{[]string{"dlq", "drop", "--all", "--group", "nosuch"}, unknown},
		{[]string{"dlq", "retry", "--all", "--group", "nosuch"}, unknown},
		{[]string{"dlq", "list", "--group", "deliver"}, ""},
		{[]string{"dlq", "list", "--group", "dedupe"}, ""},
		{[]string{"dlq", "list", "--group", "analytics"}, ""},
		{[]string{"dlq", "drop", "--all", "--group", "analytics"}, ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			err := run[tt.give[1]](parse(t, tt.give...))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("error %q, want %q", got, tt.want)
			}
		})
	}
}

// A direct message's results entry dead-lettered by a webhook receiver: the
// list names the message (it showed "-", and --campaign did not find it),
// and show decodes its events (they were printed as a quoted run of
// binary escapes).
func TestDLQOfAMessagesResults(t *testing.T) {
	rdb, keys := dlqRedis(t, "dlqmsg")
	evs := []pipeline.ResultEvent{
		{ID: pipeline.ResultID("", "m1", 7, pipeline.OutcomeSent), Message: "m1", App: "a", UserID: 12, Platform: "ios", Token: "t1", Outcome: pipeline.OutcomeSent, AtMs: 1},
		{ID: pipeline.ResultID("", "m1", 8, pipeline.OutcomeInvalid), Message: "m1", App: "a", UserID: 13, Platform: "android", Token: "t2", Outcome: pipeline.OutcomeInvalid, Reason: "UNREGISTERED", AtMs: 1},
	}
	if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamResults, 0), Fields: pipeline.ResultFields(evs...)}); err != nil {
		t.Fatal(err)
	}
	deadLettering(t, rdb, keys, "webhook", pipeline.StreamResults, func(pipeline.Entry) error { return errors.New("receiver answered 500") })
	q := pipeline.NewDLQ(rdb, keys)
	pipelinetest.Eventually(t, 10*time.Second, "the entry dead-lettered", func() bool { n, err := q.Len(t.Context()); return err == nil && n == 1 })

	cli := parse(t, "dlq", "list", "--campaign", "m1")
	var out bytes.Buffer
	if err := cli.DLQ.List.run(t.Context(), q, &out); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\S+\s+\S+\s+results/p0\s+\S+\s+1\s+m1\s+receiver answered 500`).MatchString(out.String()) {
		t.Errorf("dlq list --campaign m1 does not list the message's dead letter under its id:\n%s", out.String())
	}
	letters, err := q.List(t.Context(), pipeline.DLQFilter{})
	if err != nil || len(letters) != 1 {
		t.Fatalf("letters %+v, %v", letters, err)
	}
	var show bytes.Buffer
	printDeadLetter(&show, letters[0])
	if want := "events     2 events: user 12 ios sent; user 13 android invalid (UNREGISTERED)"; !strings.Contains(show.String(), want) {
		t.Errorf("dlq show:\n%s\nwant %q", show.String(), want)
	}
}

// Letters left in place are said once per reason: a retired receiver's 112
// letters were 112 lines of the same words.
func TestDLQLeftInPlaceOnceAReason(t *testing.T) {
	retired := "group fx no longer reads pp:{p0}:results (retired): nobody would handle it; drop its letters: pushpipe dlq drop --all --group fx"
	many := map[string]string{}
	for i := range 12 {
		many["1700000000000-"+strconv.Itoa(i)] = retired
	}
	many["1700000000001-0"] = "malformed"
	tests := []struct {
		name   string
		failed map[string]string
		want   string
		err    string // "" for none; "1 dead letters were left" read wrong
	}{
		{"none", nil, "", ""},
		{"one", map[string]string{"1-0": "malformed"}, "  1-0 left in place: malformed\n", "1 dead letter was left in place"},
		{"two", map[string]string{"1-0": retired, "1-1": retired}, "  1-0 and 1-1 left in place: " + retired + "\n", "2 dead letters were left in place"},
		{"many, ordered as Redis orders them", many, "  12 dead letters (1700000000000-0 … 1700000000000-11) left in place: " + retired + "\n" +
			"  1700000000001-0 left in place: malformed\n", "13 dead letters were left in place"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := reportFailed(&out, pipeline.DLQResult{Failed: tt.failed})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if out.String() != tt.want || got != tt.err {
				t.Errorf("printed\n%s\nerror %v; want\n%s\nerror %q", out.String(), err, tt.want, tt.err)
			}
		})
	}
}

// Dead letters whose reasons differ only past the 100 runes list shows of
// one (malformed ingest entries: "decode ...: invalid character ...") are
// rows that read differently, in the summary and in the list: cut at 100,
// they were identical rows with counts of their own. A long reason keeps
// its end, where such reasons differ.
func TestDLQListTellsLongReasonsApart(t *testing.T) {
	rdb, keys := dlqRedis(t, "dlqlong")
	long := "decode ingest entry: " + strings.Repeat("x", 100) + ": invalid character "
	tests := []struct {
		name, reason string
		want         string // the row's REASON
	}{
		// Both ends kept: the end tells them apart.
		{"differs at the end", long + "'}' after object key", "decode ingest entry: " + strings.Repeat("x", 45) + "…id character '}' after object key"},
		{"differs at the end too", long + "'a' looking for beginning of value", "decode ingest entry: " + strings.Repeat("x", 45) + "…a' looking for beginning of value"},
		// Alike at both ends even so: whole.
		{"differs in the middle", "decode: " + strings.Repeat("v", 70) + "A" + strings.Repeat("w", 70), "decode: " + strings.Repeat("v", 70) + "A" + strings.Repeat("w", 70)},
		{"differs in the middle too", "decode: " + strings.Repeat("v", 70) + "B" + strings.Repeat("w", 70), "decode: " + strings.Repeat("v", 70) + "B" + strings.Repeat("w", 70)},
		{"alone of its kind", "render: " + strings.Repeat("y", 120) + " over 4096", "render: " + strings.Repeat("y", 58) + "…" + strings.Repeat("y", 23) + " over 4096"},
	}
	var msgs []pipeline.Message
	for _, tt := range tests {
		msgs = append(msgs, pipeline.Message{Stream: keys.Stream(pipeline.StreamIngest, 0), Fields: []string{"reason", tt.reason}})
	}
	q := deadLettered(t, rdb, keys, "ingest", pipeline.StreamIngest, msgs...)
	var out bytes.Buffer
	if err := parse(t, "dlq", "list").DLQ.List.run(t.Context(), q, &out); err != nil {
		t.Fatal(err)
	}
	list, summary, _ := strings.Cut(out.String(), "\n\nDead letters by stage and reason:\n")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, part := range []string{list + "\n", summary} {
				if n := strings.Count(part, "  "+tt.want+"\n"); n != 1 {
					t.Errorf("%d rows end %q, want 1:\n%s", n, tt.want, out.String())
				}
			}
		})
	}
}

// A retry that finds its letters held by another retry running at the same
// time leaves them to it (pipeline.DLQ.Retry) and says so: it printed only
// "retried 0 dead letters", as if there had been nothing to retry.
func TestDLQRetrySaysWhatAnotherRetryHolds(t *testing.T) {
	rdb, keys := dlqRedis(t, "dlqbusy")
	if _, err := pipeline.Emit(t.Context(), rdb, pipeline.Message{Stream: keys.Stream(pipeline.StreamDeliver, 0), Fields: []string{"reason", "no credentials"}}); err != nil {
		t.Fatal(err)
	}
	deadLettering(t, rdb, keys, "deliver", pipeline.StreamDeliver, func(e pipeline.Entry) error { return errors.New(e.Fields["reason"]) })
	q := pipeline.NewDLQ(rdb, keys)
	var letters []pipeline.DeadLetter
	pipelinetest.Eventually(t, 10*time.Second, "the entry dead-lettered", func() bool {
		var err error
		letters, err = q.List(t.Context(), pipeline.DLQFilter{})
		return err == nil && len(letters) == 1
	})
	// What the other retry's claim is (claimLettersScript).
	if err := rdb.Do(t.Context(), rdb.B().Set().Key(keys.DLQClaim(letters[0].ID)).Value("1").Px(time.Minute).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	var out, errs strings.Builder
	if err := applyTo(t.Context(), q, pipeline.DLQFilter{}, "retried", (*pipeline.DLQ).Retry, &out, &errs); err != nil {
		t.Fatalf("retry: %v\n%s", err, errs.String())
	}
	for _, want := range []string{"retried 0 dead letters", "1 dead letter left to another retry running at the same time"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("retry says %q, want it to say %q", out.String(), want)
		}
	}
	if n, err := q.Len(t.Context()); err != nil || n != 1 {
		t.Errorf("%d dead letters left (%v), want the held one", n, err)
	}
}

// `dlq retry` of letters dead-lettered as bad input warns that they will
// be back and points to `dlq drop`: "retried 1 dead letter" alone read as
// fixed while the stage dead-lettered the same fields again within
// seconds. The stages' own handlers write the letters, each in its own
// words: the warning once came only of reasons starting "malformed "
// (ingest's), so split's "field campaign: ..." went unwarned. A letter of
// another reason is retried without the warning; one written before the
// mark existed (ingest's words, no mark) is still warned of.
func TestDLQRetryWarnsOfBadInput(t *testing.T) {
	t.Parallel()
	rdb, keys := dlqRedis(t, "dlqbadinput")
	// Both handlers refuse these before they touch PostgreSQL (nil here).
	running(t, rdb, keys, "ingest", pipeline.StreamIngest, ingest.New(ingest.Config{Log: zerolog.Nop()}))
	running(t, rdb, keys, "split", pipeline.StreamCampaigns, split.New(split.Config{Redis: rdb, Keys: keys}))
	deadLettering(t, rdb, keys, "deliver", pipeline.StreamDeliver, func(e pipeline.Entry) error { return errors.New(e.Fields["reason"]) })
	for _, m := range []pipeline.Message{
		{Stream: keys.Stream(pipeline.StreamIngest, 0), Fields: []string{"app", "a"}},
		{Stream: keys.Stream(pipeline.StreamCampaigns, 0), Fields: []string{pipeline.FieldCampaign, "no such id!"}},
		{Stream: keys.Stream(pipeline.StreamDeliver, 0), Fields: []string{"reason", "no credentials"}},
		{Stream: keys.Stream(pipeline.StreamDeliver, 1), Fields: []string{"reason", "malformed ingest entry: field token: missing"}},
	} {
		if _, err := pipeline.Emit(t.Context(), rdb, m); err != nil {
			t.Fatal(err)
		}
	}
	q := pipeline.NewDLQ(rdb, keys)
	var letters []pipeline.DeadLetter
	pipelinetest.Eventually(t, 10*time.Second, "every entry dead-lettered", func() bool {
		var err error
		letters, err = q.List(t.Context(), pipeline.DLQFilter{})
		return err == nil && len(letters) == 4
	})
	var bad []string // ids, oldest first, as List and the warning order them
	for _, d := range letters {
		if d.Error != "no credentials" {
			bad = append(bad, d.ID)
		}
	}
	// The list says it before anyone retries: each bad row, and what to do.
	var list strings.Builder
	if err := (&DLQListCmd{Limit: 10}).run(t.Context(), q, &list); err != nil {
		t.Fatal(err)
	}
	for _, d := range letters {
		row := ""
		for l := range strings.Lines(list.String()) {
			if strings.HasPrefix(l, d.ID+" ") {
				row = l
			}
		}
		if got, want := strings.Contains(row, "bad input: "), d.Error != "no credentials"; got != want {
			t.Errorf("dlq list's row of %s (%s) says bad input: %v, want %v:\n%s", d.ID, d.Error, got, want, list.String())
		}
	}
	if !strings.Contains(list.String(), "3 letters shown are bad input: a retry brings them back; drop them (pushpipe dlq drop)") {
		t.Errorf("dlq list does not say what to do with the bad input:\n%s", list.String())
	}
	var out, errs strings.Builder
	if err := applyTo(t.Context(), q, pipeline.DLQFilter{}, "retried", (*pipeline.DLQ).Retry, &out, &errs); err != nil {
		t.Fatalf("retry: %v\n%s", err, errs.String())
	}
	want := "warning: 3 of them had been dead-lettered as bad input (" + bad[0] + " … " + bad[2] + "; the first: "
	if !strings.Contains(out.String(), "retried 4 dead letters") || !strings.HasPrefix(errs.String(), want) ||
		!strings.Contains(errs.String(), "pushpipe dlq drop") || strings.Contains(errs.String(), "no credentials") {
		t.Errorf("retry printed %q and %q, want %q and a warning of the 3 bad-input letters only, %q…, naming pushpipe dlq drop; letters %+v",
			out.String(), errs.String(), "retried 4 dead letters", want, letters)
	}
}
