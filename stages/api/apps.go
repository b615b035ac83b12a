package api

import "fmt"

// knownApp reports whether campaigns and messages may name app: one of
// Config.KnownApp's (the --apps file), else of the app keys; with neither
// (a development API without app keys), any app.
func (s *Server) knownApp(app string) bool {
	if s.cfg.KnownApp != nil {
		return s.cfg.KnownApp(app)
	}
	if len(s.cfg.Auth.AppKeys) == 0 {
		return true
	}
	_, ok := s.cfg.Auth.AppKeys[app]
	return ok
}

// unknownApp is the 422's message.
func unknownApp(app string) string {
	return fmt.Sprintf("app %q is not known to this API: add it to the --apps file (and send SIGHUP) or to PUSHPIPE_APP_KEYS", app)
}
