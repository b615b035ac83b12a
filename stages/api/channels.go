package api

import "net/http"

func (s *Server) putSubscriber(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}

func (s *Server) deleteSubscriber(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}
