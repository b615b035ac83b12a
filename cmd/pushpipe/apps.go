package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

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

// loadAPIApps is the API's part of the apps file at path: which apps exist
// and their app keys (keys_env read here: deliver does not need them).
func loadAPIApps(path string) (map[string][]string, func(string) bool, error) {
	apps, err := deliver.LoadApps(path)
	if err != nil {
		return nil, nil, err
	}
	keys, err := apps.AppKeys()
	if err != nil {
		return nil, nil, fmt.Errorf("apps file %s: %w", path, err)
	}
	return keys, apps.Known, nil
}

// applyAPIApps hands a reloaded apps file's apps and keys to reload
// (api.Server.ReloadApps).
func applyAPIApps(reload func(known func(string) bool, keys map[string][]string) error) func(context.Context, deliver.Apps) error {
	return func(_ context.Context, apps deliver.Apps) error {
		keys, err := apps.AppKeys()
		if err != nil {
			return err
		}
		return reload(apps.Known, keys)
	}
}
