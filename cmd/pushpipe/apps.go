package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/rs/zerolog"

	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver"
)

// reloadAppsOnHUP reads the apps file again on every SIGHUP and hands it to
// apply until ctx ends. A file that does not load, or that apply refuses,
// is logged and changes nothing: the running apps stay.
func reloadAppsOnHUP(path string, log zerolog.Logger, apply func(context.Context, deliver.Apps) error) func(context.Context) error {
	return func(ctx context.Context) error {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
			}
			apps, err := deliver.LoadApps(path)
			if err == nil {
				err = apply(ctx, apps)
			}
			if err != nil {
				// The file on disk is now one the next start refuses: say
				// so, or the first restart (a deploy, a crash) is the outage.
				log.Error().Err(err).Str("file", path).
					Msg("SIGHUP: apps file not reloaded; the running apps stay, but a restart would refuse this file: fix it, then send SIGHUP again")
				continue
			}
			log.Info().Int("apps", len(apps.Apps)).Msg("SIGHUP: apps file reloaded")
		}
	}
}

// loadAPIApps is the API's part of the apps file at path: its apps and
// their app keys (keys_env read here: deliver does not need them).
func loadAPIApps(path string) (map[string][]string, *api.AppsFile, error) {
	apps, err := deliver.LoadApps(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := apps.AppKeys()
	if err != nil {
		return nil, nil, fmt.Errorf("apps file %s: %w", path, err)
	}
	return keys, &api.AppsFile{Path: path, Apps: appIDs(apps)}, nil
}

// appIDs are the apps of an apps file, sorted.
func appIDs(apps deliver.Apps) []string { return slices.Sorted(maps.Keys(apps.Apps)) }

// applyAPIApps hands a reloaded apps file's apps and keys to reload
// (api.Server.ReloadApps).
func applyAPIApps(reload func(apps []string, keys map[string][]string) error) func(context.Context, deliver.Apps) error {
	return func(_ context.Context, apps deliver.Apps) error {
		keys, err := apps.AppKeys()
		if err != nil {
			return err
		}
		return reload(appIDs(apps), keys)
	}
}

// appsUser is another part of the process that reads the apps file: all's
// API, whose reload deliver's does (applyApps).
type appsUser interface {
	checkApps(deliver.Apps) error // would apps apply
	applyApps(deliver.Apps) error
}

// apiApps is the API as an appsUser.
type apiApps struct{ srv *api.Server }

func (a apiApps) checkApps(apps deliver.Apps) error {
	keys, err := apps.AppKeys()
	if err != nil {
		return err
	}
	return a.srv.CheckAppKeys(keys)
}

func (a apiApps) applyApps(apps deliver.Apps) error {
	return applyAPIApps(a.srv.ReloadApps)(context.Background(), apps)
}

// applyApps applies a reloaded apps file to deliver's sender sets and, when
// also is set (pushpipe all), to the API too: also is checked first and
// applied last, so that one file applies to every part of the process or
// to none. Each part reloading on its own, a file deliver refused (a key
// file missing) was taken by the API, which then refused the apps deliver
// still served and knew the ones it did not.
func applyApps(also appsUser, sets ...*deliver.AppSenders) func(context.Context, deliver.Apps) error {
	return func(ctx context.Context, apps deliver.Apps) error {
		if also != nil {
			if err := also.checkApps(apps); err != nil {
				return err
			}
		}
		// The express set is built from what the bulk set just built
		// from, so it fails only where the bulk reload would have.
		for _, s := range sets {
			if err := s.Reload(ctx, apps); err != nil {
				return err
			}
		}
		if also != nil {
			return also.applyApps(apps)
		}
		return nil
	}
}
