package deliver

import (
	"reflect"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/fakeprovider"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// replayTwice runs `pushpipe replay --stream deliver` twice over the whole
// stream, as an operator repeating a replay does: every entry then has
// copies beside it, for the same people.
func (f *fixture) replayTwice(force bool) {
	f.t.Helper()
	for range 2 {
		if _, err := pipeline.Replay(f.ctx, f.rdb, f.keys, pipeline.ReplayOptions{Stream: pipeline.StreamDeliver, Force: force}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestRepeatsInOneBatchAreSentOnce: copies of an entry read in one batch
// (the stage starts after two replays, and a read takes up to 4 entries of
// a partition) reach each device once. The sent marks cannot tell: they
// are read before the batch's sends and written as they end, so every
// copy found the devices unmarked and each was sent to once per copy. A
// copy is acked as a repeat and counts nothing (the marks count each
// device once, the done users each user once).
func TestRepeatsInOneBatchAreSentOnce(t *testing.T) {
	tests := []struct {
		name    string
		message bool // a direct message, whose marks are hash fields
		raw     bool // its devices named by raw token
		force   bool // the replays bypass the marks (--force)
	}{
		{name: "campaign users"},
		{name: "campaign users, forced replays", force: true},
		{name: "message users", message: true},
		{name: "message raw tokens", message: true, raw: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			fake := fakeprovider.Start(t, fakeprovider.Options{})
			const n = 40 // one partition's users (ids 1..1023 share one)
			f.createCampaign("r1", `{}`)
			if _, err := f.db.Exec(f.ctx, `UPDATE campaigns SET kind = 'message' WHERE id = 'r1' AND $1`, tt.message); err != nil {
				t.Fatal(err)
			}
			devices := f.seedDevices(n, true)
			tokens := rawTokens(n)
			raw := make([]testDevice, n)
			for i, tok := range tokens {
				raw[i] = testDevice{tok.ID, push.Platform(tok.Platform), tok.Token}
			}
			if tt.raw {
				devices = raw
				f.emitTokens("r1", tokens)
			} else {
				f.emitUsers("r1", userRange(n))
			}
			f.replayTwice(tt.force)
			f.startStage(Config{Senders: map[push.Platform]push.Sender{push.IOS: apnsSender(t, fake), push.Android: fcmSender(t, fake)}},
				"d1", 30*time.Second)
			f.waitDone("r1", n, 30*time.Second)
			f.waitDrained()
			checkExactlyOnce(t, f, "r1", devices, fake)
			if s := f.stats("r1"); s[pipeline.StatUsersDone] != n {
				t.Errorf("%d users counted done, want %d", s[pipeline.StatUsersDone], n)
			}
		})
	}
}

// TestMayRepeat: the map of holders is built only for a batch that may
// hold one person twice; a batch of a one-channel campaign's entries (ids
// ascending, spans apart) is not.
func TestMayRepeat(t *testing.T) {
	users := func(c string, ids ...int64) parsed { return parsed{e: pipeline.DeliverEntry{Campaign: c, Users: ids}} }
	tokens := func(c string, ids ...int64) parsed {
		p := parsed{e: pipeline.DeliverEntry{Campaign: c}}
		for _, id := range ids {
			p.e.Tokens = append(p.e.Tokens, pipeline.RawToken{ID: id, Platform: "ios", Token: "t"})
		}
		return p
	}
	tests := []struct {
		name string
		give []parsed
		want bool
	}{
		{"one entry", []parsed{users("c", 1, 2, 3)}, false},
		{"spans apart", []parsed{users("c", 1, 5), users("c", 6, 9), users("c", 10)}, false},
		{"other campaigns", []parsed{users("c", 1, 5), users("d", 1, 5)}, false},
		{"users and tokens", []parsed{users("m", 1, 5), tokens("m", 1, 5)}, false},
		{"dead-lettered between", []parsed{users("c", 1, 5), {}, users("c", 6)}, false},
		{"copies", []parsed{users("c", 1, 5), users("c", 1, 5)}, true},
		{"spans overlap", []parsed{users("c", 1, 7), users("c", 5, 9)}, true},
		{"one id twice in an entry", []parsed{users("c", 1, 2, 2, 3)}, true},
		{"ids out of order", []parsed{users("c", 3, 1)}, true},
		{"token copies", []parsed{tokens("m", 1, 2), tokens("m", 2, 4)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mayRepeat(tt.give); got != tt.want {
				t.Errorf("mayRepeat = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHoldersKeepTheForce: a copy is left out, and a forced copy (replay
// --force) makes its holder forced, whichever came first: the operator
// asked for the resend.
func TestHoldersKeepTheForce(t *testing.T) {
	c, m := &campaign{ID: "c"}, &campaign{ID: "m"}
	tok := &device{id: 1, raw: true}
	tests := []struct {
		name string
		give []target
		want []target
	}{
		{"copy left out", []target{{c: c, user: 1}, {c: c, user: 2}, {c: c, user: 1, entry: 1}},
			[]target{{c: c, user: 1}, {c: c, user: 2}}},
		{"forced copy forces its holder", []target{{c: c, user: 1}, {c: c, user: 1, force: true, entry: 1}},
			[]target{{c: c, user: 1, force: true}}},
		{"forced holder stays forced", []target{{c: c, user: 1, force: true}, {c: c, user: 1, entry: 1}},
			[]target{{c: c, user: 1, force: true}}},
		{"a copy's forced devices join its holder's", []target{{c: c, user: 1, forced: []int64{3, 9}}, {c: c, user: 1, forced: []int64{1, 3}, entry: 1}},
			[]target{{c: c, user: 1, forced: []int64{1, 3, 9}}}},
		{"a copy's rounds count", []target{{c: c, user: 1, rounds: 1}, {c: c, user: 1, rounds: 4, entry: 1}, {c: c, user: 1, rounds: 2, entry: 2}},
			[]target{{c: c, user: 1, rounds: 4}}},
		{"other campaign, raw token of the same id", []target{{c: c, user: 1}, {c: m, user: 1}, {c: m, user: 1, raw: tok}},
			[]target{{c: c, user: 1}, {c: m, user: 1}, {c: m, user: 1, raw: tok}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			held := holders{}
			var got []target
			for _, tg := range tt.give {
				got = held.add(got, tg)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("targets %+v, want %+v", got, tt.want)
			}
		})
	}
}
