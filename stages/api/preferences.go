package api

import "net/http"

func (s *Server) putPreferences(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}
