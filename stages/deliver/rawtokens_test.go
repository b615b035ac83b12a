package deliver

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// rawTokens are n raw tokens, alternately iOS and Android, ids 1..n.
func rawTokens(n int) []pipeline.RawToken {
	out := make([]pipeline.RawToken, n)
	for i := range out {
		id := int64(i + 1)
		out[i] = pipeline.RawToken{ID: id, Platform: string(push.IOS), Token: fmt.Sprintf("%064x", 0xa000+id)}
		if i%2 == 1 {
			out[i].Platform, out[i].Token = string(push.Android), fmt.Sprintf("raw%d:APA91b%d", id, id)
		}
	}
	return out
}

// emitTokens writes raw-token deliver entries as the API does: spread over
// the partitions, ids ascending within each entry; forced ones (force) as
// `replay --force` does.
func (f *fixture) emitTokens(campaign string, tokens []pipeline.RawToken, force ...bool) {
	f.t.Helper()
	byPart := map[int]*pipeline.DeliverEntry{}
	for _, tok := range tokens {
		p := f.keys.HashPartition(tok.Token)
		if byPart[p] == nil {
			byPart[p] = &pipeline.DeliverEntry{Campaign: campaign, Force: len(force) > 0 && force[0]}
		}
		byPart[p].Tokens = append(byPart[p].Tokens, tok)
	}
	var msgs []pipeline.Message
	for p, e := range byPart {
		msgs = append(msgs, pipeline.Message{Stream: f.keys.Stream(pipeline.StreamDeliver, p), Fields: e.Fields()})
	}
	if _, err := pipeline.Emit(f.ctx, f.rdb, msgs...); err != nil {
		f.t.Fatal(err)
	}
}

// TestRawTokens: a message's raw tokens of both platforms are sent once
// each through the real clients, retried (as tokens) through 5xx, and
// counted; a token the provider refuses is counted invalid and, not being
// the registry's, sends no invalidation to ingest; tokens out of attempts
// go to the DLQ as a raw-token entry that can be put back.
func TestRawTokens(t *testing.T) {
	t.Parallel() // mostly waiting on retries; its bounds are counts, each case on a fixture and fake of its own
	tests := []struct {
		name        string
		fake        fakeprovider.Options
		maxAttempts int
		dead        bool // every token ends in the DLQ
	}{
		{name: "errors and dead tokens", fake: fakeprovider.Options{UnregisteredRate: 0.05, BadTokenRate: 0.02, ErrorRate: 0.1}, maxAttempts: 10},
		{name: "out of attempts", fake: fakeprovider.Options{ErrorRate: 1}, maxAttempts: 2, dead: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			fake := fakeprovider.Start(t, tt.fake)
			tokens := rawTokens(400)
			f.createCampaign("m1", `{}`)
			f.emitTokens("m1", tokens)
			f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)},
				TPS: 2000, RetryBase: MinRetry, MaxAttempts: tt.maxAttempts}, "d1", 30*time.Second)
			s := f.waitDone("m1", len(tokens), 60*time.Second)

			if inv := f.invalidations(); len(inv) != 0 {
				t.Errorf("%d invalidations sent to ingest for raw tokens", len(inv))
			}
			if n := f.retriesLeft(); n != 0 {
				t.Errorf("%d retries left", n)
			}
			sum := fake.Summary()
			if tt.dead {
				var back []pipeline.RawToken
				for _, d := range f.dlq() {
					fields, err := pipeline.DecodeDLQFields(d[pipeline.DLQFields])
					if err != nil {
						t.Fatal(err)
					}
					e, err := pipeline.ParseDeliverEntry(fields)
					if err != nil || len(e.Users) != 0 {
						t.Fatalf("DLQ entry %v: %v", fields, err)
					}
					back = append(back, e.Tokens...)
				}
				slices.SortFunc(back, byTokenID)
				if !slices.Equal(back, tokens) {
					t.Errorf("DLQ holds %d raw tokens, want all %d as sent", len(back), len(tokens))
				}
				if s[pipeline.StatSent] != 0 || s[pipeline.StatFailed] != int64(len(tokens)) {
					t.Errorf("counters %v, want all %d failed", s, len(tokens))
				}
				return
			}
			accepted := map[string]int{}
			for _, r := range fake.Receipts() {
				accepted[r.Token]++
				if r.CollapseID != "m1" {
					t.Errorf("%s sent with collapse id %q", r.Token, r.CollapseID)
				}
			}
			refused := int64(sum.Unregistered + sum.BadToken)
			for _, tok := range tokens {
				if accepted[tok.Token] > 1 {
					t.Errorf("token %d accepted %d times", tok.ID, accepted[tok.Token])
				}
			}
			if s[pipeline.StatSent] != int64(len(accepted)) || s[pipeline.StatInvalid] != refused || s[pipeline.StatFailed] != 0 ||
				int64(len(accepted))+refused != int64(len(tokens)) {
				t.Errorf("counters %v; provider accepted %d tokens, refused %d as invalid, of %d", s, len(accepted), refused, len(tokens))
			}
			// One result event per token, of no user, with its outcome.
			events := map[string]pipeline.ResultEvent{}
			for _, ev := range f.results() {
				if _, dup := events[ev.Token]; dup {
					t.Errorf("two result events for token %s", ev.Token)
				}
				events[ev.Token] = ev
			}
			for _, tok := range tokens {
				ev := events[tok.Token]
				want := pipeline.OutcomeInvalid
				if accepted[tok.Token] > 0 {
					want = pipeline.OutcomeSent
				}
				if ev.UserID != 0 || ev.Outcome != want || ev.Platform != tok.Platform {
					t.Errorf("token %d: result event %+v, want user 0, %s, %s", tok.ID, ev, want, tok.Platform)
				}
			}
			if refused == 0 || sum.Errors == 0 {
				t.Errorf("provider refused %d tokens and answered %d 5xx: the paths were not exercised", refused, sum.Errors)
			}
		})
	}
}
