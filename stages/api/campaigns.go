package api

import "net/http"

func (s *Server) postCampaign(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}

func (s *Server) getCampaign(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}
