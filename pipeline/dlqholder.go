package pipeline

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/rueidis"
)

// A retry claims the letters it re-injects (claimLetters) under its own
// Redis connection's id, held for the whole retry. A retry killed between
// claiming and deleting its letters (SIGKILL, the box lost) left claims
// that held them for dlqClaimFor: the next `dlq retry` said "run this again
// in a minute". Its connection closed with it, which Redis sees at once:
// the next retry asks Redis which holders of the claims it meets are still
// connected, and takes the letters of those that are not.

// holderPrefix marks a claim's value that names a connection. Claims
// written before hold "1": their holder cannot be asked about, and they
// wait out dlqClaimFor as before.
const holderPrefix = "conn:"

// retryHolder is the connection a retry names in its claims, and through
// which it asks whether other holders are connected. On a cluster it is
// the DLQ's node's (the claims are under the DLQ's tag).
type retryHolder struct {
	dc   rueidis.DedicatedClient
	name string // holderPrefix and the connection's CLIENT ID; "" when Redis did not say
}

// holdConnection takes a connection of its own for a retry, until done is
// called. A Redis that refuses CLIENT ID (a proxy, a renamed command)
// gives a holder without a name: its claims are found by no one as dead,
// and last dlqClaimFor, as claims did before holders were named.
func (q *DLQ) holdConnection(ctx context.Context) (h retryHolder, done func()) {
	dc, cancel := q.c.Dedicate()
	h.dc = dc
	// The XLEN binds the connection to the DLQ's node on a cluster.
	res := dc.DoMulti(ctx, dc.B().Xlen().Key(q.keys.DLQ()).Build(), dc.B().ClientId().Build())
	if id, err := res[1].AsInt64(); err == nil {
		h.name = holderPrefix + strconv.FormatInt(id, 10)
	}
	return h, cancel
}

// claimValue is what h writes in its claims.
func (h retryHolder) claimValue() string {
	if h.name == "" {
		return "1"
	}
	return h.name
}

// gone returns, of the holders named in claims (holderPrefix values),
// those no longer connected to Redis. On any doubt (Redis cannot say) none
// is: their claims then wait out dlqClaimFor.
func (h retryHolder) gone(ctx context.Context, holders []string) []string {
	var ids []int64
	for _, s := range holders {
		if id, err := strconv.ParseInt(strings.TrimPrefix(s, holderPrefix), 10, 64); err == nil && strings.HasPrefix(s, holderPrefix) && s != h.name {
			ids = append(ids, id)
		}
	}
	if h.name == "" || len(ids) == 0 {
		return nil
	}
	// Its own id too: an answer that does not list it is not understood,
	// and taken to say nothing (a holder wrongly found dead has its
	// letters re-injected twice).
	me, _ := strconv.ParseInt(strings.TrimPrefix(h.name, holderPrefix), 10, 64)
	list, err := h.dc.Do(ctx, h.dc.B().ClientList().Id().ClientId(append(ids, me)...).Build()).ToString()
	if err != nil {
		return nil
	}
	list, _ = strings.CutPrefix(list, "txt:") // RESP3's verbatim string
	var connected []int64
	for line := range strings.Lines(list) {
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				if id, err := strconv.ParseInt(v, 10, 64); err == nil {
					connected = append(connected, id)
				}
			}
		}
	}
	if !slices.Contains(connected, me) {
		return nil
	}
	var out []string
	for _, id := range ids {
		if !slices.Contains(connected, id) {
			out = append(out, holderPrefix+strconv.FormatInt(id, 10))
		}
	}
	return out
}
