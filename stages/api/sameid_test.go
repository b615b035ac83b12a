package api

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// TestSameIDAtOnce: requests with the same id arriving together (a client's
// retry racing its first try, two API replicas), round after round, on
// standalone Redis and a cluster, queue the campaign or message once, and
// exactly one of them is told it was created; the others are told 200 when
// they carry its content, 409 when theirs differs (half of them change the
// title). A raw-token message's entries skip dedupe, so a second queuing
// would be a second send of every token.
func TestSameIDAtOnce(t *testing.T) {
	t.Parallel()
	const ios = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	tests := []struct {
		name, path, body string // body's id is ID, a new one each round
		created          int
		stream           string // where its entries go
		units            func(map[string]string) int
		want             int // units queued in all
	}{
		{"campaign", "/v1/campaigns", `{"id":"ID","app":"com.example.chat","channels":["news"],"notification":{"title":"x"}}`,
			http.StatusCreated, pipeline.StreamCampaigns, func(map[string]string) int { return 1 }, 1},
		{"message to users", "/v1/messages", `{"id":"ID","app":"com.example.chat","users":[1,2,3],"notification":{"title":"x"}}`,
			http.StatusAccepted, pipeline.StreamDedupeExpress, func(f map[string]string) int {
				e, err := pipeline.ParseDedupeEntry(f)
				if err != nil {
					t.Error(err)
				}
				return len(e.Users) + len(e.Muted)
			}, 3},
		{"message to raw tokens", "/v1/messages", `{"id":"ID","app":"com.example.chat","tokens":[{"platform":"ios","token":"` + ios + `"},` +
			`{"platform":"android","token":"fcm-token-1"}],"notification":{"title":"x"}}`,
			http.StatusAccepted, pipeline.StreamDeliverExpress, func(f map[string]string) int {
				e, err := pipeline.ParseDeliverEntry(f)
				if err != nil {
					t.Error(err)
				}
				return len(e.Tokens)
			}, 2},
	}
	redis := map[string]func(t *testing.T) string{
		"standalone": func(*testing.T) string { return env.Redis.Addr },
		"cluster":    func(t *testing.T) string { return strings.Join(pipelinetest.ClusterT(t).Addrs, ",") },
	}
	for _, where := range []string{"standalone", "cluster"} {
		t.Run(where, func(t *testing.T) {
			a := newDeviceAPI(t, redis[where](t), Auth{AdminToken: "op"})
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					const n, rounds = 8, 10
					for round := range rounds {
						body := strings.Replace(tt.body, `"ID"`, fmt.Sprintf(`"same-%s-%d"`, strings.ReplaceAll(tt.name, " ", "-"), round), 1)
						other := strings.Replace(body, `"title":"x"`, `"title":"y"`, 1)
						codes := make([]int, n)
						var wg sync.WaitGroup
						start := make(chan struct{})
						for i := range n {
							wg.Go(func() {
								b := body
								if i%2 == 1 {
									b = other
								}
								req, _ := http.NewRequest("POST", a.url+tt.path, strings.NewReader(b))
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
						winner := slices.Index(codes, tt.created)
						if winner < 0 || slices.Index(codes[winner+1:], tt.created) >= 0 {
							t.Fatalf("round %d: answers %v, want one %d", round, codes, tt.created)
						}
						for i, c := range codes {
							want := http.StatusConflict
							if i%2 == winner%2 {
								want = http.StatusOK
							}
							if i != winner && c != want {
								t.Errorf("round %d: answers %v: request %d (content of the created one: %v) got %d, want %d",
									round, codes, i, i%2 == winner%2, c, want)
							}
						}
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
					if units != rounds*tt.want {
						t.Errorf("%d queued in %s over %d rounds, want %d (each round's once)", units, tt.stream, rounds, rounds*tt.want)
					}
				})
			}
		})
	}
}
