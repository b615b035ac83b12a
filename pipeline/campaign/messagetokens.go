package campaign

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Token is a device a message names by its platform and token, outside the
// registry.
type Token struct {
	Platform string // "ios" or "android"
	Token    string
}

// MaxMessageTokens is the most raw tokens one message lists.
const MaxMessageTokens = 1_000

// ErrTooManyTokens is a message listing more than MaxMessageTokens tokens.
var ErrTooManyTokens = errors.New("too many tokens")

// normalizeTokens validates every token (a *ValidationError naming its
// index) and drops repeats, keeping the first: a token is sent once per
// message, and its position in what remains is its id (RawToken.ID).
func (m *Message) normalizeTokens() error {
	if len(m.Tokens) > MaxMessageTokens {
		return fmt.Errorf("tokens: at most %d per message, got %d: %w", MaxMessageTokens, len(m.Tokens), ErrTooManyTokens)
	}
	seen := make(map[Token]bool, len(m.Tokens))
	out := make([]Token, 0, len(m.Tokens))
	for i, t := range m.Tokens {
		p, err := devices.ParsePlatform(t.Platform)
		if err != nil {
			return invalid("tokens[%d].%v", i, err)
		}
		// As a registration is checked: an APNs token sent as android
		// would go to FCM, which refuses it.
		if err := devices.ValidateRegistration(p, t.Token); err != nil {
			return invalid("tokens[%d].%v", i, err)
		}
		t.Token = devices.CanonicalToken(p, t.Token) // "AB…" and "ab…" are one phone
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	m.Tokens = out
	return nil
}

// stored is the tokens as the campaigns row keeps them.
func storedTokens(ts []Token) []string {
	if ts == nil {
		return nil
	}
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Platform + " " + t.Token
	}
	return out
}

// enqueueTokens appends a raw-token message straight to deliver's stream of
// its lane, one entry per partition in one pipelined call: there is no user
// to dedupe, repeats were dropped by Normalize, and deliver's sent marks
// (keyed by each token's id within the message) make each token's send
// exactly-once across redeliveries and crashes of its entry. Not across two
// entries of it read together, which both pass the marks: a retry of a
// failed enqueue appends only the partitions whose entry is not in yet
// (appendOnce). Tokens spread over the
// partitions by hash, so the deliver consumers share a large list.
//
// Dedupe is skipped, so the counters it would write ("in" and "targets",
// which MessageProgress compares with the listed count) are set here,
// before the entries: HSET of the same values, so a retry of a failed
// enqueue counts nothing twice.
func enqueueTokens(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, m Message) error {
	byPart := map[int]*pipeline.DeliverEntry{}
	var parts []int
	for i, t := range m.Tokens {
		p := keys.HashPartition(t.Token)
		e := byPart[p]
		if e == nil {
			e = &pipeline.DeliverEntry{Campaign: m.ID}
			byPart[p] = e
			parts = append(parts, p)
		}
		// Ascending ids within each entry: positions are visited in order.
		e.Tokens = append(e.Tokens, pipeline.RawToken{ID: int64(i + 1), Platform: t.Platform, Token: t.Token})
	}
	expire := MessageCountersExpireMs(m.ExpiresAt().UnixMilli())
	cmds := make(rueidis.Commands, 0, 2*len(parts))
	msgs := make([]pipeline.Message, len(parts))
	for i, p := range parts {
		n := strconv.Itoa(len(byPart[p].Tokens))
		stats := keys.Stats(p, m.ID)
		cmds = append(cmds,
			rdb.B().Hset().Key(stats).FieldValue().FieldValue(pipeline.StatIn, n).FieldValue(pipeline.StatTargets, n).Build(),
			rdb.B().Pexpireat().Key(stats).MillisecondsTimestamp(expire).Build())
		msgs[i] = pipeline.Message{Stream: keys.Stream(m.Lane().Stream(pipeline.StreamDeliver), p), Fields: byPart[p].Fields()}
	}
	for _, res := range rdb.DoMulti(ctx, cmds...) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("count tokens of message %q: %w", m.ID, err)
		}
	}
	if err := appendOnce(ctx, rdb, keys, m.ID, expire, parts, msgs); err != nil {
		return fmt.Errorf("queue tokens of message %q: %w", m.ID, err)
	}
	return nil
}
