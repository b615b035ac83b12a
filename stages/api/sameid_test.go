package api

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
)

// TestSameIDAtOnce: requests with the same id arriving together (a client's
// retry racing its first try, two API replicas) queue the campaign or
// message once, and exactly one of them is told it was created. A raw-token
// message's entries skip dedupe, so a second queuing would be a second send
// of every token.
func TestSameIDAtOnce(t *testing.T) {
	const ios = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	tests := []struct {
		name, path, body string
		created          int
		stream           string // where its entries go
		units            func(map[string]string) int
		want             int // units queued in all
	}{
		{"campaign", "/v1/campaigns", `{"id":"same-c","app":"com.example.chat","channels":["news"],"notification":{"title":"x"}}`,
			http.StatusCreated, pipeline.StreamCampaigns, func(map[string]string) int { return 1 }, 1},
		{"message to users", "/v1/messages", `{"id":"same-u","app":"com.example.chat","users":[1,2,3],"notification":{"title":"x"}}`,
			http.StatusAccepted, pipeline.StreamDedupeExpress, func(f map[string]string) int {
				e, err := pipeline.ParseDedupeEntry(f)
				if err != nil {
					t.Error(err)
				}
				return len(e.Users) + len(e.Muted)
			}, 3},
		{"message to raw tokens", "/v1/messages", `{"id":"same-t","app":"com.example.chat","tokens":[{"platform":"ios","token":"` + ios + `"},` +
			`{"platform":"android","token":"fcm-token-1"}],"notification":{"title":"x"}}`,
			http.StatusAccepted, pipeline.StreamDeliverExpress, func(f map[string]string) int {
				e, err := pipeline.ParseDeliverEntry(f)
				if err != nil {
					t.Error(err)
				}
				return len(e.Tokens)
			}, 2},
	}
	a := newDeviceAPI(t, env.Redis.Addr, Auth{AdminToken: "op"})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 8
			codes := make([]int, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					req, _ := http.NewRequest("POST", a.url+tt.path, strings.NewReader(tt.body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer op")
					<-start
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					codes[i] = resp.StatusCode
				})
			}
			close(start)
			wg.Wait()
			created, again := 0, 0
			for _, c := range codes {
				switch c {
				case tt.created:
					created++
				case http.StatusOK:
					again++
				}
			}
			if created != 1 || again != n-1 {
				t.Errorf("answers %v: want one %d and %d × 200", codes, tt.created, n-1)
			}
			units := 0
			for _, s := range a.keys.Streams(tt.stream) {
				xs, err := a.rdb.Do(context.Background(), a.rdb.B().Xrange().Key(s).Start("-").End("+").Build()).AsXRange()
				if err != nil {
					t.Fatal(err)
				}
				for _, x := range xs {
					units += tt.units(x.FieldValues)
				}
			}
			if units != tt.want {
				t.Errorf("%d queued in %s, want %d (queued once)", units, tt.stream, tt.want)
			}
		})
	}
}
