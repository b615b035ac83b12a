package campaign

import (
	"errors"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestListMessages: messages only (not campaigns), newest first, paged by
// the last id, each with its counters; an unknown cursor is ErrNotFound.
func TestListMessages(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c1", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"m1", "m2", "m3"} {
		if _, _, err := CreateMessage(ctx, rdb, db, keys, Message{Campaign: Campaign{ID: id, App: "a", Title: "hi " + id}, Users: []int64{1, 2}}); err != nil {
			t.Fatal(err)
		}
	}
	do(t, rdb, rdb.B().Hset().Key(keys.Stats(1, "m3")).FieldValue().
		FieldValue(pipeline.StatTargets, "2").FieldValue(pipeline.StatSent, "1").FieldValue(pipeline.StatFailed, "1").Build())

	page, next, err := ListMessages(ctx, rdb, db, keys, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Report.ID != "m3" || page[1].Report.ID != "m2" || next != "m2" {
		t.Fatalf("first page %+v, next %q", page, next)
	}
	if r := page[0].Report; r.Targets != 2 || r.Sent != 1 || r.Failed != 1 || page[0].Title != "hi m3" {
		t.Errorf("m3 reported as %+v", page[0])
	}
	page, next, err = ListMessages(ctx, rdb, db, keys, next, 2)
	if err != nil || len(page) != 1 || page[0].Report.ID != "m1" || next != "" {
		t.Fatalf("last page %+v, next %q, %v", page, next, err)
	}
	for _, before := range []string{"nope", "c1"} {
		if _, _, err := ListMessages(ctx, rdb, db, keys, before, 2); !errors.Is(err, ErrNotFound) {
			t.Errorf("before %q: %v, want ErrNotFound", before, err)
		}
	}
}
