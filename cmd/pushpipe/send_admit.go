package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
	"github.com/pushpipe/pushpipe/stages/api"
	"github.com/pushpipe/pushpipe/stages/deliver"
)

// refusal is one of send's checks refusing a new campaign or message, said
// in send's words: createError returns it as it is (it is no failure to
// run again).
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// admit is what a new campaign (--channel) must pass, as the API's
// POST /v1/campaigns: its app known, its --send-at not past, its payload
// rendered, someone to receive it unless --allow-empty. They run as
// campaign.Admit, after Create found no record under --id: a retry of a
// stored one is answered from the record (the same content: "already
// exists"; other: the 409's words), whatever they would answer now. A
// one-off channel empties once sent, an app leaves the apps file, and a
// retry told to change its request would send it twice under a new --id.
func (c *SendCmd) admit(db *pgxpool.Pool, known api.KnownApps) []campaign.Admit {
	admit := []campaign.Admit{
		func(context.Context, campaign.Campaign) error { return c.checkApp(known) },
		func(context.Context, campaign.Campaign) error { return c.checkPastSendAt(time.Now()) },
		payloadAdmit(db),
	}
	if !c.AllowEmpty {
		admit = append(admit, func(ctx context.Context, x campaign.Campaign) error {
			if err := campaign.CheckAudience(ctx, db, x); err != nil {
				return refusal{fmt.Errorf("send: %w", allowEmptyFlag(err))}
			}
			return nil
		})
	}
	return admit
}

// admitMessage is admit's for a direct message (--user, --token), as the
// API's POST /v1/messages, and then an app with no device at all for
// --user: a typo in --app (or an app not launched yet) that would be
// accepted and reach nobody. (Raw tokens need no registered device: they
// are the devices.)
func (c *SendCmd) admitMessage(db *pgxpool.Pool, known api.KnownApps) []campaign.Admit {
	admit := []campaign.Admit{
		func(context.Context, campaign.Campaign) error { return c.checkApp(known) },
		payloadAdmit(db),
	}
	if len(c.Tokens) > 0 {
		return admit
	}
	return append(admit, func(ctx context.Context, x campaign.Campaign) error {
		var ve *campaign.ValidationError
		if err := campaign.CheckAudience(ctx, db, x); errors.As(err, &ve) {
			return refusal{fmt.Errorf("send: app %q has no registered devices, so nobody would receive this message; check --app", x.App)}
		} else if err != nil {
			return refusal{fmt.Errorf("send: %w", err)}
		}
		return nil
	})
}

// payloadAdmit is deliver.CheckCampaign, the API's payload check, said of
// send's flags.
func payloadAdmit(db *pgxpool.Pool) campaign.Admit {
	return func(ctx context.Context, x campaign.Campaign) error {
		if err := deliver.CheckCampaign(ctx, db, x); err != nil {
			return refusal{fmt.Errorf("send: %w", dataFlag(err))}
		}
		return nil
	}
}

// knownApps are the apps the API knows, decided as it does from the same
// settings: the apps file (--apps), else PUSHPIPE_APP_KEYS, and
// PUSHPIPE_DEV, which `pushpipe dev` sets on its API and in the env file
// its second shell sources. Read before anything is dialled: a file that
// does not load is said first.
func (c *SendCmd) knownApps() (api.KnownApps, error) {
	var known api.KnownApps
	if c.Apps != "" {
		apps, err := deliver.LoadApps(c.Apps)
		if err != nil {
			return known, fmt.Errorf("send: --apps: %w", err)
		}
		known.File = &api.AppsFile{Path: c.Apps, Apps: appIDs(apps)}
		return known, nil
	}
	keys, err := api.ParseAppKeys(os.Getenv("PUSHPIPE_APP_KEYS"))
	if err != nil {
		return known, fmt.Errorf("send: %w", err)
	}
	known.Keyed = slices.Sorted(maps.Keys(keys))
	known.Dev = os.Getenv("PUSHPIPE_DEV") != ""
	return known, nil
}

// checkApp refuses an app the API would answer 422 for, in the API's words
// (api.KnownApps.Check: where its apps come from, the fix that works
// there, the apps when few), said of --app. Taken here, a campaign or a
// message of a misspelt app was created and each of its devices then
// failed "no credentials". With neither setting (a development API), any
// app is known, as to the API, and the audience checks against PostgreSQL
// stand in.
func (c *SendCmd) checkApp(known api.KnownApps) error {
	err := known.Check(c.App)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "app "); ok {
		msg = "--app " + rest
	}
	// Only here does send know less than the API: it read the apps of
	// PUSHPIPE_APP_KEYS in this shell, and an API run with an apps file
	// knows that file's. (Given --apps, it read the same file; under
	// pushpipe dev, the API has no file.)
	if known.File == nil && !known.Dev {
		msg += "; if the API runs with --apps FILE, give send the same --apps FILE"
	}
	return refusal{errors.New("send: " + msg)}
}

// pastSendAt is how far in the past a --send-at may be for a new campaign:
// the time it took to type the command.
const pastSendAt = time.Minute

// checkPastSendAt refuses a --send-at already past for a new campaign, as
// the console's form does: a past send_at starts it at once (the API's
// rule, so that a retry after the time compares equal), and a mistyped
// year or day sent to everyone now what was meant for later.
func (c *SendCmd) checkPastSendAt(now time.Time) error {
	if c.sendAt.IsZero() || now.Sub(c.sendAt) <= pastSendAt {
		return nil
	}
	return refusal{fmt.Errorf("send: --send-at %s is %s ago: a campaign whose time is past starts at once; "+
		"give a time ahead, or leave --send-at out to send now", c.sendAt.UTC().Format(time.RFC3339), now.Sub(c.sendAt).Round(time.Second))}
}
