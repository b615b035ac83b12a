package campaign

import (
	"testing"
	"time"
)

// waitCanceled waits until cs says campaign id is canceled, failing t if
// that takes more than within after returned (when the cancel returned).
func waitCanceled(t *testing.T, cs *Cancels, id string, returned time.Time, within time.Duration) {
	t.Helper()
	for {
		canceled, err := cs.Canceled(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if canceled {
			t.Logf("seen canceled %v after the cancel returned", time.Since(returned))
			return
		}
		if time.Since(returned) > within {
			t.Fatalf("not seen canceled %v after the cancel returned", time.Since(returned))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A campaign the watcher forgot (nobody asked about it for Forget) and
// that was canceled meanwhile is seen canceled when asked about again.
func TestCancelsRereadAForgottenCampaign(t *testing.T) {
	rdb, db, keys := world(t)
	ctx := t.Context()
	if _, _, err := Create(ctx, rdb, db, keys, Campaign{ID: "c3", App: "a", Channels: []string{"x"}, Title: "t"}); err != nil {
		t.Fatal(err)
	}
	cs := NewCancels(rdb, keys)
	cs.Forget = time.Millisecond
	if canceled, err := cs.Canceled(ctx, "c3"); err != nil || canceled {
		t.Fatalf("before the cancel: %v %v", canceled, err)
	}
	for cs.Watching() > 0 { // forgotten at the next poll
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := Cancel(ctx, rdb, db, keys, "c3"); err != nil {
		t.Fatal(err)
	}
	if canceled, err := cs.Canceled(ctx, "c3"); err != nil || !canceled {
		t.Fatalf("asked after it was forgotten and canceled: %v %v, want canceled", canceled, err)
	}
}
