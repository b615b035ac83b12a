package pipeline

import (
	"net/http"
	"net/http/pprof"
	"os"
)

// PprofEnv, set to a non-empty value, adds net/http/pprof's /debug/pprof/
// handlers to every process's ops port (OpsHandler). The bench sets it to
// profile stage processes; it is off by default because a profile endpoint
// costs CPU when called and reveals internals.
const PprofEnv = "PUSHPIPE_PPROF"

func mountPprof(mux *http.ServeMux) {
	if os.Getenv(PprofEnv) == "" {
		return
	}
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
