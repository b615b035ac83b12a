package fakeprovider

import (
	"fmt"
	"net/http"
	"time"
)

// handleOutage starts or ends an outage now: POST /_outage?for=D answers 503
// to everything for D from now (for=0 ends the outage at once). A drill
// that waits for work to fail starts the provider with a long --outage and
// ends it when it is ready, instead of racing a timer against a loaded
// machine.
func (s *Server) handleOutage(w http.ResponseWriter, r *http.Request) {
	d, err := time.ParseDuration(r.URL.Query().Get("for"))
	if err != nil || d < 0 {
		http.Error(w, `want ?for=DURATION (e.g. 0s to end the outage, 10s to start one)`, http.StatusBadRequest)
		return
	}
	end := time.Now().Add(d)
	s.outageEnd.Store(end.UnixNano())
	fmt.Fprintf(w, "outage until %s\n", end.Format(time.RFC3339Nano))
}

// SetOutage is POST /_outage for a server in the same process.
func (s *Server) SetOutage(d time.Duration) { s.outageEnd.Store(time.Now().Add(d).UnixNano()) }

// SetLatency changes the latency added to every request from now on (a
// provider slowing down, then recovering), for a server in the same
// process.
func (s *Server) SetLatency(d time.Duration) { s.latency.Store(int64(d)) }
