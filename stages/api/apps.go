package api

import (
	"fmt"
	"slices"
)

// appsState is what the apps file decides, swapped whole by ReloadApps:
// who may call (the app keys, hashed), their device-write buckets, and
// which apps campaigns and messages may name.
type appsState struct {
	auth   verifier
	limits deviceLimits
	known  func(app string) bool // nil: the apps with a key, or any without keys
	keyed  Auth
}

func (s *Server) newAppsState(auth Auth, known func(string) bool) *appsState {
	return &appsState{auth: auth.verifier(), limits: newDeviceLimits(auth, s.cfg.DeviceWriteRate, s.cfg.DeviceWriteBurst),
		known: known, keyed: auth}
}

// ReloadApps swaps in the apps of a reloaded apps file: known says which
// apps exist, keys are their app keys (beside PUSHPIPE_APP_KEYS). Requests
// in progress finish under the old set. Keys that Auth.Validate refuses
// change nothing. The device-write buckets start full again.
func (s *Server) ReloadApps(known func(string) bool, keys map[string][]string) error {
	if err := s.CheckAppKeys(keys); err != nil {
		return err
	}
	auth := s.cfg.Auth
	auth.FileKeys = keys
	s.apps.Store(s.newAppsState(auth, known))
	return nil
}

// CheckAppKeys reports whether ReloadApps would take keys: for a process
// whose other parts reload the same file (pushpipe all), to apply it to
// all of them or to none.
func (s *Server) CheckAppKeys(keys map[string][]string) error {
	auth := s.cfg.Auth
	auth.FileKeys = keys
	return auth.Validate()
}

// knownApp reports whether campaigns and messages may name app: one of
// the apps file's, else of the app keys; with neither (a development API
// without app keys), any app.
func (s *Server) knownApp(app string) bool {
	st := s.apps.Load()
	if st.known != nil {
		return st.known(app)
	}
	apps := st.keyed.apps()
	return len(apps) == 0 || slices.Contains(apps, app)
}

// checkApp is nil when app is known (knownApp), else the 422's message,
// naming the fix that works: with an apps file only its apps are known,
// whatever PUSHPIPE_APP_KEYS holds. Every route that names an app asks it,
// so a device write, a device delete, a campaign and a message refuse the
// same apps with the same words.
func (s *Server) checkApp(app string) error {
	switch {
	case s.knownApp(app):
		return nil
	case s.apps.Load().known != nil:
		return fmt.Errorf("app %q is not known to this API: add it to the --apps file and send SIGHUP", app)
	default:
		return fmt.Errorf("app %q is not known to this API: add it to PUSHPIPE_APP_KEYS and restart", app)
	}
}
