package deliver

import (
	"cmp"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// A message may name its devices by raw token (pipeline.RawToken) instead
// of by user. Such a device has no registry row: its target's user and its
// device id are both the token's id within the message (unique there, as
// sent marks and done users are kept per message), so marks, retries and
// counts work as for a user with one device. Its device's user is 0: the
// token belongs to no user, and its result event says so.
//
// Invalidations: a provider's "invalid token" for a raw token is counted
// invalid (and reported in its result event), but no invalidation goes to
// ingest. The token is the caller's, kept by the caller: ingest would write
// a tombstone row for a token the registry never held (one per rejected
// token, rows no campaign reads), and for a token that is also registered
// it would stamp user 0 over its owner. A registered device with that dead
// token is invalidated by the next campaign that reaches it through the
// registry, at the cost of one more refused send.

// rawTargets are the targets of a raw-token entry: one per token.
func rawTargets(c *campaign, e pipeline.DeliverEntry, entry int) []target {
	out := make([]target, len(e.Tokens))
	for i, tok := range e.Tokens {
		d := &device{platform: rawPlatform(tok.Platform), token: tok.Token, id: tok.ID, raw: true}
		out[i] = target{c: c, user: tok.ID, force: e.Force, forced: e.ForceDevices, rounds: e.Rounds, entry: entry, raw: d}
	}
	return out
}

// rawPlatform is a raw token's platform as deliver knows it; "" for one it
// does not (the API lets only ios and android through), whose send fails
// with "no sender for platform".
func rawPlatform(p string) push.Platform {
	switch p {
	case "ios":
		return push.IOS
	case "android":
		return push.Android
	default:
		return ""
	}
}

// rawToken is a raw target's token as a deliver entry carries it (retries,
// dead letters).
func (t target) rawToken() pipeline.RawToken {
	return pipeline.RawToken{ID: t.raw.id, Platform: string(t.raw.platform), Token: t.raw.token}
}

func byTokenID(a, b pipeline.RawToken) int { return cmp.Compare(a.ID, b.ID) }
