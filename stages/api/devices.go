package api

import "net/http"

func (s *Server) postDevice(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}

func (s *Server) postDeviceBatch(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}

func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotImplemented, "not built yet")
}
