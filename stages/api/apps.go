package api

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/deliver"
)

// appsState is what the apps file decides, swapped whole by ReloadApps:
// who may call (the app keys, hashed), their device-write buckets, and
// which apps campaigns and messages may name.
type appsState struct {
	auth   verifier
	limits deviceLimits
	known  KnownApps
}

func (s *Server) newAppsState(auth Auth, file *AppsFile) *appsState {
	return &appsState{auth: auth.verifier(), limits: newDeviceLimits(auth, s.cfg.DeviceWriteRate, s.cfg.DeviceWriteBurst),
		known: KnownApps{File: file, Keyed: auth.apps(), Dev: s.cfg.Dev}}
}

// ReloadApps swaps in the apps of a reloaded apps file (Config.AppsFile's
// path): apps are its apps, keys their app keys (beside
// PUSHPIPE_APP_KEYS). Requests in progress finish under the old set. Keys
// that Auth.Validate refuses change nothing. The device-write buckets
// start full again.
func (s *Server) ReloadApps(apps []string, keys map[string][]string) error {
	if err := s.CheckAppKeys(keys); err != nil {
		return err
	}
	auth := s.cfg.Auth
	auth.FileKeys = keys
	file := &AppsFile{Apps: slices.Sorted(slices.Values(apps))}
	if s.cfg.AppsFile != nil {
		file.Path = s.cfg.AppsFile.Path
	}
	s.apps.Store(s.newAppsState(auth, file))
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

// checkApp is nil when app is known, else the 422's message. Every route
// that names an app asks it, and the console's form too, so a device
// write, a device delete, a campaign and a message refuse the same apps
// with the same words.
func (s *Server) checkApp(app string) error { return s.apps.Load().known.Check(app) }

// appNames are the apps the console's new-campaign form offers: exactly
// those checkApp takes (KnownApps.Offered).
func (s *Server) appNames() []string { return s.apps.Load().known.Offered() }

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

// AppsFile is an --apps file as the API reads it: its path, which the
// 422 names as the place to fix, and its apps (sorted), the only ones
// campaigns, messages and devices may name, with or without app keys
// (campaigns and messages take the operator token).
type AppsFile struct {
	Path string
	Apps []string
}

// KnownApps is which apps campaigns and messages may name and where they
// were set: the apps file's when there is one, else those of the app keys,
// else (a development API with neither) any. The API (its 422, the
// console's form) and `pushpipe send` all ask it, from the same settings,
// so a campaign the API would refuse is not accepted by the CLI only to
// fail "no credentials", and each refusal gives a fix that works where the
// apps came from.
type KnownApps struct {
	File  *AppsFile // nil: no apps file
	Keyed []string  // the apps with an app key, sorted
	// Dev is an API that `pushpipe dev` started: it set PUSHPIPE_APP_KEYS
	// itself, to the app it seeded, so "add it to PUSHPIPE_APP_KEYS" is
	// advice nobody can follow there.
	Dev bool
}

// listedApps is how many apps a refusal lists: a few make the fix
// obvious, a long list would bury it.
const listedApps = 5

// Check is nil when app is known, else what is wrong and the fix that
// works: with an apps file only its apps are known, whatever
// PUSHPIPE_APP_KEYS holds.
func (k KnownApps) Check(app string) error {
	switch {
	case k.File != nil && slices.Contains(k.File.Apps, app), k.File == nil && (len(k.Keyed) == 0 || slices.Contains(k.Keyed, app)):
		return nil
	case k.File != nil:
		return fmt.Errorf("app %q is not known to this API: its apps are those of the apps file %s (%s): use one of them, or add it to that file and send SIGHUP to the API and deliver",
			app, k.File.Path, appList(k.File.Apps))
	case k.Dev:
		// Dev's deliver has credentials for its seeded app alone: an
		// app added to the API would fail "no credentials" there.
		return fmt.Errorf("app %q is not known to this API: pushpipe dev serves only the app it seeded (%s): use it",
			app, appList(k.Keyed))
	default:
		return fmt.Errorf("app %q is not known to this API: its apps are those of PUSHPIPE_APP_KEYS (%s): use one of them, or add it to PUSHPIPE_APP_KEYS and restart the API",
			app, appList(k.Keyed))
	}
}

// Offered are the apps Check takes, to offer where an app is picked (the
// console's form): the apps file's, else the keyed ones; nil when it
// takes any.
func (k KnownApps) Offered() []string {
	if k.File != nil {
		return k.File.Apps
	}
	return k.Keyed
}

// appList is apps quoted, or how many when more than listedApps.
func appList(apps []string) string {
	if len(apps) > listedApps {
		return fmt.Sprintf("%d apps", len(apps))
	}
	q := make([]string, len(apps))
	for i, a := range apps {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, ", ")
}
