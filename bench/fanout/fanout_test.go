package fanout

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// audience is a campaign's channels, its users' mutes and what must come
// out of dedupe, computed in Go.
type audience struct {
	channels map[string][]int64
	prefs    map[int64][]string // user → muted preference fields
	category string
	want     map[int64]bool // users who must get it (once)
	muted    int64          // people in the union who must not
	dups     int64          // reached sightings beyond the first per person
}

// threeChannels is the scenario, scaled: A; B overlapping A by half;
// C inside their union. 5% of A mute A (those also in B still get it
// through B), 3% of B mute B, 1% mute the campaign's category, and 1% mute
// an unrelated channel (they have preferences but must get it).
// PUSHPIPE_FANOUT_FULL=1 uses the sizes: 1M, 500k, 100k.
func threeChannels() audience {
	nA, nB, nC := 100_000, 50_000, 10_000
	if os.Getenv("PUSHPIPE_FANOUT_FULL") == "1" {
		nA, nB, nC = 1_000_000, 500_000, 100_000
	}
	a := sample(nA, 1, 3*int64(nA))
	b := slices.Concat(pick(a, nB/2), sample(nB-nB/2, 3*int64(nA)+1, 2*int64(nB)))
	slices.Sort(b)
	union := map[int64]bool{}
	for _, u := range slices.Concat(a, b) {
		union[u] = true
	}
	c := pick(sortedKeys(union), nC)
	au := audience{channels: map[string][]int64{"A": a, "B": b, "C": c}, prefs: map[int64][]string{}, category: "news"}
	muteSome := func(users []int64, frac float64, field string) {
		for _, u := range pick(users, int(float64(len(users))*frac)) {
			au.prefs[u] = append(au.prefs[u], field)
		}
	}
	all := sortedKeys(union)
	muteSome(a, 0.05, "c:A")
	muteSome(b, 0.03, "c:B")
	muteSome(all, 0.01, "k:news")
	muteSome(all, 0.01, "c:Z")
	au.compute()
	return au
}

// compute derives who must get the campaign from channels and prefs.
func (au *audience) compute() {
	has := func(u int64, field string) bool { return slices.Contains(au.prefs[u], field) }
	au.want = map[int64]bool{}
	union := map[int64]bool{}
	var sightings int64
	for ch, users := range au.channels {
		for _, u := range users {
			union[u] = true
			if has(u, "c:"+ch) || (au.category != "" && has(u, "k:"+au.category)) {
				continue
			}
			au.want[u] = true
			sightings++
		}
	}
	au.muted = int64(len(union) - len(au.want))
	au.dups = sightings - int64(len(au.want))
}

func (f *fixture) seed(au audience) {
	f.t.Helper()
	for ch, users := range au.channels {
		f.subscribe(ch, users)
	}
	f.mute(au.prefs)
}

func (au audience) campaign(id string) campaign.Campaign {
	return campaign.Campaign{ID: id, App: "com.example.news", Channels: []string{"A", "B", "C"},
		Category: au.category, Title: "Breaking", Body: "Something happened"}
}

// TestThreeOverlappingChannels: exactly |union − muted| users come out of
// dedupe, each once, and the progress counters count people exactly.
func TestThreeOverlappingChannels(t *testing.T) {
	servers(t, func(t *testing.T, f *fixture) {
		au := threeChannels()
		f.seed(au)
		f.stages(5000)
		c, created := f.create(au.campaign(""))
		if !created {
			t.Fatal("a new campaign was reported as existing")
		}
		f.settled(c.ID, 90*time.Second)
		expectExactly(t, f.delivered(c.ID), au.want)
		rep := f.progress(c.ID)
		if rep.State != campaign.StateRunning || rep.Targets != int64(len(au.want)) || rep.Muted != au.muted ||
			rep.DuplicatesSuppressed != au.dups {
			t.Fatalf("progress %+v, want running with targets %d, muted %d, duplicates %d",
				rep, len(au.want), au.muted, au.dups)
		}
		f.finishDelivery(c.ID)
		if rep := f.progress(c.ID); rep.State != campaign.StateDone {
			t.Fatalf("after delivery: %+v, want done", rep)
		}
	})
}

// TestSparseIDs: 200k subscribers spread over ids up to 10^12 make about
// 200k/5000 ranges (not millions of empty id spans), and all get it once.
func TestSparseIDs(t *testing.T) {
	servers(t, func(t *testing.T, f *fixture) {
		users := sample(200_000, 1, 1_000_000_000_000)
		users = append(users, 1<<62) // an id far beyond Lua's exact doubles
		f.subscribe("sparse", users)
		f.stages(5000)
		c, _ := f.create(campaign.Campaign{App: "a", Channels: []string{"sparse"}, Title: "t"})
		f.settled(c.ID, 60*time.Second)
		want := map[int64]bool{}
		for _, u := range users {
			want[u] = true
		}
		expectExactly(t, f.delivered(c.ID), want)
		total, err := f.rdb.Do(context.Background(), f.rdb.B().Hget().Key(f.keys.Campaign(c.ID)).
			Field(pipeline.CampaignRangesTotal).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		// one per 5000 subscribers, plus one shorter range per segment
		if least, most := int64(len(users)/5000+1), int64(len(users)/5000+4); total < least || total > most {
			t.Fatalf("%d ranges, want %d to %d", total, least, most)
		}
	})
}

// TestSameIDTwice: creating a campaign id again sends nothing new, and an
// id reused for other content is a conflict.
func TestSameIDTwice(t *testing.T) {
	servers(t, func(t *testing.T, f *fixture) {
		users := sample(20_000, 1, 100_000)
		f.subscribe("ch", users)
		f.stages(5000)
		c := campaign.Campaign{ID: "launch-1", App: "a", Channels: []string{"ch"}, Title: "t"}
		if _, created := f.create(c); !created {
			t.Fatal("first create not created")
		}
		f.settled(c.ID, 30*time.Second)
		before := countEntries(t, f)
		if _, created := f.create(c); created {
			t.Fatal("second create created")
		}
		// Queue it again anyway, as a Create that died before marking the
		// row queued would: split re-emits the same ranges, nothing new
		// comes out.
		if _, err := f.db.Exec(context.Background(), `UPDATE campaigns SET queued_at = NULL WHERE id = $1`, c.ID); err != nil {
			t.Fatal(err)
		}
		if _, created := f.create(c); !created {
			t.Fatal("the create that queued an unqueued row reported it as existing")
		}
		f.settled(c.ID, 30*time.Second)
		pipelinetest.Eventually(t, 10*time.Second, "the re-queued campaign split again", func() bool {
			n, _ := pipeline.Outstanding(context.Background(), f.rdb, f.keys.Streams(pipeline.StreamCampaigns), "split")
			return n == 0
		})
		f.settled(c.ID, 30*time.Second)
		if after := countEntries(t, f); after != before {
			t.Fatalf("deliver entries went from %d to %d", before, after)
		}
		want := map[int64]bool{}
		for _, u := range users {
			want[u] = true
		}
		expectExactly(t, f.delivered(c.ID), want)
		c.Title = "other"
		if _, _, err := campaign.Create(context.Background(), f.rdb, f.db, f.keys, c); err == nil {
			t.Fatal("reusing an id for other content was accepted")
		}
	})
}

func countEntries(t *testing.T, f *fixture) int64 {
	t.Helper()
	var n int64
	for _, s := range f.keys.Streams(pipeline.StreamDeliver) {
		l, err := f.rdb.Do(context.Background(), f.rdb.B().Xlen().Key(s).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		n += l
	}
	return n
}

// TestMutesByChannelAndCategory names each case: muting one channel still
// reaches a user through another; muting every channel of theirs, or the
// campaign's category, does not; muting something unrelated changes nothing.
func TestMutesByChannelAndCategory(t *testing.T) {
	servers(t, func(t *testing.T, f *fixture) {
		const (
			plain       = 10   // in A
			mutedAinB   = 2048 // in A and B, muted A: reached through B
			mutedA      = 4100 // in A only, muted A
			mutedAB     = 7000 // in A and B, muted both
			mutedCat    = 9000 // in A and B, muted the category
			mutedOther  = 9999 // in B, muted channel Z and category sport
			mutedInC    = 12345
			onlyInC     = 20000 // in C only
			catElsewise = 30000 // in C, muted category "sport" (not the campaign's)
		)
		f.subscribe("A", []int64{plain, mutedAinB, mutedA, mutedAB, mutedCat})
		f.subscribe("B", []int64{mutedAinB, mutedAB, mutedCat, mutedOther})
		f.subscribe("C", []int64{mutedInC, onlyInC, catElsewise})
		f.mute(map[int64][]string{
			mutedAinB: {"c:A"}, mutedA: {"c:A"}, mutedAB: {"c:A", "c:B"}, mutedCat: {"k:news"},
			mutedOther: {"c:Z", "k:sport"}, mutedInC: {"c:C"}, catElsewise: {"k:sport"},
		})
		f.stages(5000)
		c, _ := f.create(campaign.Campaign{App: "a", Channels: []string{"A", "B", "C"}, Category: "news", Title: "t"})
		f.settled(c.ID, 30*time.Second)
		want := map[int64]bool{plain: true, mutedAinB: true, mutedOther: true, onlyInC: true, catElsewise: true}
		expectExactly(t, f.delivered(c.ID), want)
		rep := f.progress(c.ID)
		// muted people: mutedA, mutedAB, mutedCat, mutedInC
		if rep.Targets != 5 || rep.Muted != 4 || rep.DuplicatesSuppressed != 0 {
			t.Fatalf("progress %+v, want 5 targets, 4 muted, 0 duplicates", rep)
		}
	})
}
