// Command receiver is the webhook tests' HTTP receiver, run as a process of
// its own so the tests can SIGKILL it. It verifies every POST's signature
// with its secret, answers 500 or 429 (with Retry-After) to a share of
// POSTs at random (or 429 to one POST of a given number), answers the
// first POSTs late if asked (-slow-posts, -slow), and appends one NDJSON line per POST to -out before it
// answers: when, how many events, the status, whether the signature held,
// and the events.
package main

import (
	"encoding/json"
	"flag"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/webhook"
)

type line struct {
	Ms     int64                  `json:"ms"`
	N      int                    `json:"n"`
	Status int                    `json:"status"`
	Valid  bool                   `json:"valid"`
	Events []pipeline.ResultEvent `json:"events"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address")
	secret := flag.String("secret", "", "the one secret this receiver holds")
	out := flag.String("out", "", "NDJSON log of POSTs (appended)")
	fail := flag.Float64("fail", 0, "share of POSTs answered 500")
	throttle := flag.Float64("throttle", 0, "share of POSTs answered 429 with Retry-After: 1")
	down := flag.Bool("down", false, "answer 503 to everything")
	pauseAt := flag.Int("pause-at", 0, "answer the POST of this number (1 is the first) 429 with Retry-After: -pause seconds")
	pause := flag.Int("pause", 3, "the Retry-After of -pause-at, seconds")
	slowPosts := flag.Int("slow-posts", 0, "answer the first this many POSTs only after -slow (a receiver that takes them, then answers late)")
	slow := flag.Duration("slow", 0, "how late the first -slow-posts POSTs are answered")
	flag.Parse()
	f, err := os.OpenFile(*out, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		log.Fatal(err)
	}
	var (
		mu    sync.Mutex
		enc   = json.NewEncoder(f)
		count int // POSTs so far
	)
	http.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		l := line{Ms: time.Now().UnixMilli(), Status: http.StatusOK}
		l.Valid = webhook.Verify(r.Header.Get(webhook.SignatureHeader), []byte(*secret), body, time.Now(), 5*time.Minute) == nil
		var b struct {
			Events []pipeline.ResultEvent `json:"events"`
		}
		if json.Unmarshal(body, &b) != nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			l.Status = http.StatusBadRequest
		}
		l.N, l.Events = len(b.Events), b.Events
		mu.Lock()
		count++
		nth := count
		mu.Unlock()
		switch x := rand.Float64(); {
		case nth == *pauseAt:
			l.Status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(*pause))
		case *down:
			l.Status = http.StatusServiceUnavailable
		case !l.Valid:
			l.Status = http.StatusUnauthorized
		case x < *fail:
			l.Status = http.StatusInternalServerError
		case x < *fail+*throttle:
			l.Status = http.StatusTooManyRequests
			w.Header().Set("Retry-After", "1")
		}
		mu.Lock()
		err = enc.Encode(l) // written before the answer: a 2xx is on record
		mu.Unlock()
		if err != nil {
			l.Status = http.StatusInternalServerError
		}
		if nth <= *slowPosts {
			time.Sleep(*slow)
		}
		w.WriteHeader(l.Status)
		if *down {
			io.WriteString(w, "down for maintenance\n") // what a dead letter's reason quotes
		}
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
