package api

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestBulkSubscribersAtOnce: requests adding overlapping ids to one channel
// at the same time, each in its own order (parallel workers syncing a
// membership list), all succeed. Inserted in the order given, two of them
// could each wait for a row the other had inserted first: PostgreSQL
// breaks such a deadlock by failing one, which was a 500 "is the schema
// migrated?".
func TestBulkSubscribersAtOnce(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	const workers, rounds, n = 4, 10, 500
	for round := range rounds {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprint(round*n + i + 1)
		}
		var wg sync.WaitGroup
		for range workers {
			own := append([]string(nil), ids...)
			rand.Shuffle(len(own), func(i, j int) { own[i], own[j] = own[j], own[i] })
			body := `{"add":[` + strings.Join(own, ",") + `]}`
			wg.Go(func() {
				if r := a.do("POST", "/v1/channels/sync/subscribers", body, ""); r.status != http.StatusNoContent {
					t.Errorf("round %d: %d %s, want 204", round, r.status, r.body)
				}
			})
		}
		wg.Wait()
	}
	var got int
	if err := a.db.QueryRow(t.Context(), `SELECT count(*) FROM subscriptions WHERE channel = 'sync'`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != rounds*n {
		t.Fatalf("%d subscribers, want %d", got, rounds*n)
	}
}

// TestMirroredBulkSubscribersAtOnce: two requests at once, one adding what
// the other removes and the reverse (two workers syncing one room from
// opposite snapshots), both succeed. Each statement's insert and delete
// lock rows in no order PostgreSQL promises, so each could hold a row the
// other waits for: PostgreSQL failed one with deadlock_detected, a 503 the
// client had to retry.
func TestMirroredBulkSubscribersAtOnce(t *testing.T) {
	t.Parallel()
	a := newDeviceAPI(t, env.Redis.Addr, Auth{Insecure: true})
	const rounds, n = 30, 400
	var odd, even []string
	for i := 1; i <= n; i++ {
		if i%2 == 1 {
			odd = append(odd, fmt.Sprint(i))
		} else {
			even = append(even, fmt.Sprint(i))
		}
	}
	all := `{"add":[` + strings.Join(append(append([]string(nil), odd...), even...), ",") + `]}`
	if r := a.do("POST", "/v1/channels/room/subscribers", all, ""); r.status != http.StatusNoContent {
		t.Fatalf("%d %s", r.status, r.body)
	}
	bodies := []string{
		`{"add":[` + strings.Join(odd, ",") + `],"remove":[` + strings.Join(even, ",") + `]}`,
		`{"add":[` + strings.Join(even, ",") + `],"remove":[` + strings.Join(odd, ",") + `]}`,
	}
	for round := range rounds {
		var wg sync.WaitGroup
		for _, body := range bodies {
			wg.Go(func() {
				if r := a.do("POST", "/v1/channels/room/subscribers", body, ""); r.status != http.StatusNoContent {
					t.Errorf("round %d: %d %s, want 204", round, r.status, r.body)
				}
			})
		}
		wg.Wait()
		// Either request went last, whole: half the ids remain.
		var got int
		if err := a.db.QueryRow(t.Context(), `SELECT count(*) FROM subscriptions WHERE channel = 'room'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n/2 {
			t.Fatalf("round %d: %d subscribers, want %d (one request's set whole)", round, got, n/2)
		}
		// Back to everyone, for the next round to delete.
		if r := a.do("POST", "/v1/channels/room/subscribers", all, ""); r.status != http.StatusNoContent {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
}
