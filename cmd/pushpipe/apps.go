package main

import (
	"context"
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
