package console_test

import (
	"strings"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
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
