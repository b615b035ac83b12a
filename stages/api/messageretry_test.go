package api

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestMessageRetryAfterPartialQueueing: a message whose queueing failed
// half-way (a cluster master down while its entries were appended to
// several partitions, or PostgreSQL lost after the appends but before the
// row was marked queued) is answered 503 + Retry-After with its id; the
// client's retry with that id, once the outage is over, is a 202 and
// queues it again, entries the first attempt appended included. The end
// result must still be each device once at the provider, the message done
// only once every device was reached, and its counts those of one sending:
// with dedupe and deliver reading all along, and with them reading both
// attempts' entries only after the retry (a backlog). (A raw-token message
// with a master down appends nothing: its counters, written first to every
// partition it uses, fail before any append.)
func TestMessageRetryAfterPartialQueueing(t *testing.T) {
	t.Parallel()
	const (
		nUsers  = campaign.WholeMessageUsers + 100 // grouped by user partition
		nTokens = 60
	)
	users := make([]int64, nUsers)
	for i := range users {
		users[i] = 100_000 + int64(i)*pipeline.DefaultBucket // every partition
	}
	token := func(n int64) string { return fmt.Sprintf("%064x", 0xa0000000+n) }
	tokens := make([]string, nTokens)
	for i := range tokens {
		tokens[i] = token(int64(i))
	}
	tests := []struct {
		name    string
		cluster bool
		raw     bool   // raw tokens, else users
		fault   string // "master down" or "mark lost"
		backlog bool   // dedupe and deliver start after the retry
	}{
		{name: "users, a master down, backlog", cluster: true, fault: "master down", backlog: true},
		{name: "users, a master down, stages reading", cluster: true, fault: "master down"},
		{name: "users, the mark lost, backlog", fault: "mark lost", backlog: true},
		{name: "raw tokens, the mark lost, stages reading", raw: true, fault: "mark lost"},
		{name: "raw tokens, the mark lost, backlog", raw: true, fault: "mark lost", backlog: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case has its own keys, database, provider and (for a
			// master down) cluster: their outages' waits overlap.
			t.Parallel()
			addr := env.Redis.Addr
			var cluster *pipelinetest.Cluster
			if tt.cluster {
				cluster = pipelinetest.ClusterWithT(t, pipelinetest.RedisOptions{AOF: true})
				addr = strings.Join(cluster.Addrs, ",")
			}
			f := newIdleMessageFlow(t, addr)
			if !tt.backlog {
				f.start()
			}
			id := "retry-" + strings.ReplaceAll(strings.ReplaceAll(tt.name, ",", ""), " ", "-")
			list, want := "", map[string]int{}
			if tt.raw {
				items := make([]string, len(tokens))
				for i, tok := range tokens {
					items[i] = fmt.Sprintf(`{"platform":"ios","token":%q}`, tok)
					want[tok] = 1
				}
				list = `"tokens":[` + strings.Join(items, ",") + `]`
			} else {
				if _, err := f.db.Exec(t.Context(), `INSERT INTO devices (app, user_id, platform, token, state, event_at)
					SELECT $1, u, 1, lpad(to_hex(2684354560 + u), 64, '0'), 0, now() FROM unnest($2::bigint[]) AS u`, flowApp, users); err != nil {
					t.Fatal(err)
				}
				ids := make([]string, len(users))
				for i, u := range users {
					ids[i] = strconv.FormatInt(u, 10)
					want[token(u)] = 1
				}
				list = `"users":[` + strings.Join(ids, ",") + `]`
			}
			body := fmt.Sprintf(`{"id":%q,"app":%q,%s,"notification":{"title":"retry","body":"once"}}`, id, flowApp, list)
			stream := pipeline.StreamDedupeExpress
			if tt.raw {
				stream = pipeline.StreamDeliverExpress
			}

			var over func()
			switch tt.fault {
			case "master down":
				over = downMaster(t, f, cluster, id, stream)
			case "mark lost":
				loseFirstMark(t, f)
				over = func() {}
			}
			r := f.do("POST", "/v1/messages", body, "op")
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, `"id":"`+id+`"`) {
				t.Fatalf("first attempt: %d (Retry-After %q) %s, want 503 naming the message's id", r.status, r.header.Get("Retry-After"), r.body)
			}
			if first := streamEntries(t, f, stream); first == 0 {
				t.Fatalf("the first attempt appended nothing to %s: not the half-way failure this test is about", stream)
			} else {
				t.Logf("the first attempt appended %d entries before it failed", first)
			}
			over()
			pipelinetest.Eventually(t, 30*time.Second, "the retry accepted", func() bool {
				r = f.do("POST", "/v1/messages", body, "op")
				return r.status != http.StatusServiceUnavailable
			})
			if r.status != http.StatusAccepted {
				t.Fatalf("the retry: %d %s, want 202 (it queued the message)", r.status, r.body)
			}
			if r := f.do("POST", "/v1/messages", body, "op"); r.status != http.StatusOK {
				t.Fatalf("once more: %d %s, want 200", r.status, r.body)
			}
			if tt.backlog {
				f.start()
			}

			var rep campaign.MessageReport
			for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
				g := f.do("GET", "/v1/messages/"+id, "", "op")
				if json.Unmarshal([]byte(g.body), &rep) == nil && rep.State == campaign.MessageDone {
					break
				}
				if time.Now().After(deadline) {
					d, derr := pipeline.Outstanding(t.Context(), f.rdb, f.keys.Streams(pipeline.StreamDedupeExpress), "dedupe")
					l, lerr := pipeline.Outstanding(t.Context(), f.rdb, f.keys.Streams(pipeline.StreamDeliverExpress), "deliver")
					letters, _ := pipeline.NewDLQ(f.rdb, f.keys).List(t.Context(), pipeline.DLQFilter{})
					why := make([]string, len(letters))
					for i, d := range letters {
						why[i] = d.Stream + ": " + d.Error
					}
					t.Fatalf("message %s not done after 2m: %d %s; %d devices reached; outstanding at dedupe %d (%v), at deliver %d (%v); dead letters %q",
						id, g.status, g.body, len(f.reached(id)), d, derr, l, lerr, why)
				}
			}
			// Done means every device was reached: deliver counts a user
			// done only once its sends' marks are written.
			if got := f.reached(id); len(got) != len(want) {
				t.Errorf("done with %d of %d devices reached (report %+v)", len(got), len(want), rep)
			}
			for _, s := range []string{pipeline.StreamDedupeExpress, pipeline.StreamDeliverExpress} {
				group := "dedupe"
				if s == pipeline.StreamDeliverExpress {
					group = "deliver"
				}
				pipelinetest.Eventually(t, 30*time.Second, s+" read and acked", func() bool {
					n, err := pipeline.Outstanding(t.Context(), f.rdb, f.keys.Streams(s), group)
					return err == nil && n == 0
				})
			}
			got := f.reached(id)
			if !maps.Equal(got, want) {
				twice := 0
				for tok, n := range got {
					if n > 1 {
						twice++
						if twice <= 3 {
							t.Errorf("token %s… reached %d times", tok[:12], n)
						}
					}
				}
				t.Errorf("%d of %d devices reached, %d of them more than once; want each once", len(got), len(want), twice)
			}
			if rep = f.report(id); rep.Targets != int64(len(want)) || rep.Sent != int64(len(want)) || rep.Failed != 0 {
				t.Errorf("report %+v, want targets and sent %d (one sending)", rep, len(want))
			}
		})
	}
}

// report is message id's progress as the API gives it.
func (f *messageFlow) report(id string) campaign.MessageReport {
	f.t.Helper()
	var rep campaign.MessageReport
	if g := f.do("GET", "/v1/messages/"+id, "", "op"); json.Unmarshal([]byte(g.body), &rep) != nil {
		f.t.Fatalf("GET /v1/messages/%s: %d %s", id, g.status, g.body)
	}
	return rep
}

// streamEntries counts the entries of every partition of a stream that
// answers (a partition on a master that is down counts none).
func streamEntries(t *testing.T, f *messageFlow, stream string) int64 {
	t.Helper()
	var n int64
	for _, s := range f.keys.Streams(stream) {
		// rueidis retries a read whose node does not answer until its
		// context ends.
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		if l, err := f.rdb.Do(ctx, f.rdb.B().Xlen().Key(s).Build()).AsInt64(); err == nil {
			n += l
		}
		cancel()
	}
	return n
}

// downMaster kills a master of the cluster holding some of stream's
// partitions but not message id's own hash (which queueing writes first),
// so queueing fails after the other masters' appends. What it returns
// restarts the master (AOF: nothing it held is lost).
func downMaster(t *testing.T, f *messageFlow, cluster *pipelinetest.Cluster, id, stream string) func() {
	t.Helper()
	for addr, node := range f.rdb.Nodes() {
		// Past the node timeout the other masters answer CLUSTERDOWN too.
		if err := node.Do(t.Context(), node.B().ConfigSet().ParameterValue().
			ParameterValue("appendfsync", "always").ParameterValue("cluster-node-timeout", "30000").Build()).Error(); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
	}
	owner := func(key string) string {
		slot, err := f.rdb.Do(t.Context(), f.rdb.B().ClusterKeyslot().Key(key).Build()).AsInt64()
		if err != nil {
			t.Fatal(err)
		}
		return pipelinetest.SlotOwner(t, f.rdb, slot)
	}
	own := owner(f.keys.Campaign(id))
	victim := -1
	for p := range f.keys.Partitions {
		if o := owner(f.keys.Stream(stream, p)); o != own {
			victim = slices.IndexFunc(cluster.Nodes, func(n *pipelinetest.Redis) bool { return n.Addr == o })
			break
		}
	}
	if victim < 0 {
		t.Fatalf("every partition of %s on %s, the message's own master", stream, own)
	}
	if err := cluster.Nodes[victim].Kill(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := cluster.Nodes[victim].Restart(); err != nil {
			t.Fatal(err)
		}
	}
}

// loseFirstMark makes PostgreSQL fail the first write that marks a message
// queued, after its entries were appended: what the API sees when the
// connection is lost at that instant (a failover, a restart).
func loseFirstMark(t *testing.T, f *messageFlow) {
	t.Helper()
	if _, err := f.db.Exec(t.Context(), `
		CREATE SEQUENCE lose_mark;
		CREATE FUNCTION lose_mark() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF OLD.queued_at IS NULL AND NEW.queued_at IS NOT NULL AND nextval('lose_mark') = 1 THEN
				RAISE EXCEPTION 'connection lost (the test''s)';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER lose_mark BEFORE UPDATE ON campaigns FOR EACH ROW EXECUTE FUNCTION lose_mark();`); err != nil {
		t.Fatal(err)
	}
}
