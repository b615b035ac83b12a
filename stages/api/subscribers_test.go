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
