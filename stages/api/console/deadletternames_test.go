package console_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
	"github.com/pushpipe/pushpipe/stages/api"
)

// TestDeadLettersNameTheirCampaigns: the dead letters list names each
// letter's campaign or direct message as the rest of the console does (its
// title, else its id) and links it to its own page: a message's to the
// message's. It showed ids alone, and a message's id led to
// /ui/campaigns/, which has no direct messages.
func TestDeadLettersNameTheirCampaigns(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.titled("spring", "Spring sale")
	b.sendMessage("dm-1", "Your order shipped", []int64{1})
	for _, id := range []string{"spring", "dm-1", "gone-1"} {
		if _, err := pipeline.Emit(t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamDeliver, 0),
			Fields: []string{pipeline.FieldCampaign, id, pipeline.FieldUsers, pipeline.EncodeIDs([]int64{1})}}); err != nil {
			t.Fatal(err)
		}
	}
	b.deadLettered(pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1"}, func(pipeline.Entry) bool { return true })
	_, page := b.get("/ui/deadletters")
	tests := []struct {
		name string
		want string
	}{
		{"a campaign, by its title", `<a href="/ui/campaigns/spring" class="subject">Spring sale</a>`},
		{"a direct message, by its title, to its page", `<a href="/ui/messages/dm-1" class="subject">Your order shipped</a><br><span class="hint">direct message</span>`},
		{"an id with no record, by its id", `<a href="/ui/campaigns/gone-1" class="subject">gone-1</a></td>`},
	}
	for _, tt := range tests {
		if !strings.Contains(page, tt.want) {
			t.Errorf("%s: the list has no %s", tt.name, tt.want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}

// TestDeadLettersWithPostgresHung: the letters are Redis's, and their list
// answers with PostgreSQL hanging (a failover whose connections neither
// answer nor refuse), naming them by id under a notice that says why. It
// waited out the page's whole 5 s for the names, and then showed ids as if
// the campaigns had no titles.
func TestDeadLettersWithPostgresHung(t *testing.T) {
	t.Parallel()
	b := newHTTPBed(t)
	b.titled("spring", "Spring sale")
	if _, err := pipeline.Emit(t.Context(), b.rdb, pipeline.Message{Stream: b.keys.Stream(pipeline.StreamDeliver, 0),
		Fields: []string{pipeline.FieldCampaign, "spring", pipeline.FieldUsers, pipeline.EncodeIDs([]int64{1})}}); err != nil {
		t.Fatal(err)
	}
	b.deadLettered(pipeline.Options{Stage: "deliver", Stream: pipeline.StreamDeliver, Consumer: "d1"}, func(pipeline.Entry) bool { return true })

	// The bed's database through a proxy that forwards nothing.
	pcfg := b.db.Config().Copy()
	proxy := pipelinetest.ProxyT(t, net.JoinHostPort(pcfg.ConnConfig.Host, strconv.Itoa(int(pcfg.ConnConfig.Port))), 0)
	host, port, err := net.SplitHostPort(proxy.Addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.ConnConfig.Host, pcfg.ConnConfig.Port, pcfg.MinConns = host, uint16(p), 0
	hung, err := pgxpool.NewWithConfig(t.Context(), pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hung.Close)
	proxy.Hold()
	t.Cleanup(proxy.Release)
	c := b.withAPI(t, func(cfg *api.Config) { cfg.DB = hung })

	status, page := c.get("/ui/deadletters")
	tests := []struct {
		name string
		want string
	}{
		{"the letter, by its campaign's id", `<a href="/ui/campaigns/spring" class="subject">spring</a></td>`},
		{"why by id", `id="names-unavailable">The campaigns&#39; and messages&#39; names are unavailable (PostgreSQL did not answer within 1s): the letters are named by their ids.`},
	}
	for _, tt := range tests {
		if !strings.Contains(page, tt.want) {
			t.Errorf("%s: the list (%d) has no %s", tt.name, status, tt.want)
		}
	}
	if t.Failed() {
		t.Log(page)
	}
}
