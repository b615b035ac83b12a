package api

import (
	"context"
	"fmt"
	"slices"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver"
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

// knownApp reports whether campaigns and messages may name app
// (KnownApps, of the apps now loaded).
func (s *Server) knownApp(app string) bool { return s.checkApp(app) == nil }

// checkApp is nil when app is known, else the 422's message. Every route
// that names an app asks it, so a device write, a device delete, a
// campaign and a message refuse the same apps with the same words.
func (s *Server) checkApp(app string) error {
	st := s.apps.Load()
	return KnownApps{File: st.known, Keyed: st.keyed.apps()}.Check(app)
}

// appNames are the apps the console's new-campaign form offers: those
// with an app key that campaigns may name. An apps file's app without a
// key is known but not listed (the file reaches the API as a predicate),
// so the form's field still takes any app.
func (s *Server) appNames() []string {
	st := s.apps.Load()
	k := KnownApps{File: st.known, Keyed: st.keyed.apps()}
	var out []string
	for _, app := range k.Keyed {
		if k.Check(app) == nil {
			out = append(out, app)
		}
	}
	return out
}

// unknownApp is checkApp's refusal of a new campaign or message, which
// answerCreated answers 422.
type unknownApp struct{ error }

// admitApp is checkApp as a new record's campaign.Admit: a SIGHUP or a
// restart may drop an app from the apps file while its campaigns and
// messages are stored, and their retries are answered from the record.
func (s *Server) admitApp(_ context.Context, c campaign.Campaign) error {
	if err := s.checkApp(c.App); err != nil {
		return unknownApp{err}
	}
	return nil
}

// admitPayload is deliver.CheckCampaign as a new record's campaign.Admit:
// a release whose renderers take less must still answer a retry of what
// an older one stored.
func (s *Server) admitPayload(ctx context.Context, c campaign.Campaign) error {
	return deliver.CheckCampaign(ctx, s.cfg.DB, c)
}

// KnownApps is which apps campaigns and messages may name: the apps
// file's when there is one, else those of the app keys, else (a
// development API with neither) any. The API and `pushpipe send` both
// ask it, from the same settings, so a campaign the API would refuse with
// a 422 is not accepted by the CLI only to fail "no credentials".
type KnownApps struct {
	File  func(app string) bool // the apps file's apps; nil: no file
	Keyed []string              // the apps with an app key
}

// Check is nil when app is known, else what is wrong and the fix that
// works: with an apps file only its apps are known, whatever
// PUSHPIPE_APP_KEYS holds.
func (k KnownApps) Check(app string) error {
	switch {
	case k.File != nil && k.File(app), k.File == nil && (len(k.Keyed) == 0 || slices.Contains(k.Keyed, app)):
		return nil
	case k.File != nil:
		return fmt.Errorf("app %q is not known to this API: add it to the --apps file and send SIGHUP", app)
	default:
		return fmt.Errorf("app %q is not known to this API: add it to PUSHPIPE_APP_KEYS and restart", app)
	}
}
