package deliver

// Copies of a deliver entry may be read in one batch: an operator's
// `pushpipe replay` of the same range run twice writes each entry's copies
// beside it, and a read takes up to --batch entries of a partition. The
// sent marks cannot tell the copies apart: a round reads them before its
// sends (skipDone) and writes them as the sends end, so every copy found
// the devices unmarked, and each device got one notification per copy with
// no crash involved. So within a batch the first target of a person (a
// campaign's or message's user, or raw token) holds it, and a later one is
// left out of the round, as a device already marked is: its entry is acked
// with the batch, and it counts nothing (the marks count each device once,
// the done users each user once). What becomes of the person (sent,
// retried, put off to its slot, dead-lettered) is the holder's entry's.
//
// Copies read by two batches at once (two consumers, or two handlers of
// one, each taking one copy) are not caught here: both read the marks
// before either writes them. Closing that would take a reservation written
// before the sends, a round trip more per batch, and owned by the entry
// that made it (a field per device naming the entry, not a bit), or a
// crash between the reservation and the send would lose the device on the
// entry's redelivery. Replays are an operator's, rare, and a replay's
// copies sit next to each other, so they mostly land in one read.

// person is what a target's sent marks are kept under within a batch: its
// campaign and its user, or its raw token's id.
type person struct {
	campaign string
	id       int64
	raw      bool
}

// mayRepeat reports whether two targets of entries may be one person: an
// entry's ids do not ascend strictly, or two entries of one campaign or
// message span overlapping ids. Dedupe's entries of a campaign from one
// channel do not (its ranges are apart), nor a message's (one entry a
// partition): the map of holders costs ~100 ns and ~100 bytes a target, a
// few percent of a send's CPU, which a batch that cannot hold a repeat
// does not pay. A retry beside fresh entries may overlap: the map then.
func mayRepeat(entries []parsed) bool {
	type span struct {
		campaign string
		raw      bool
		lo, hi   int64
	}
	var spans []span
	for _, p := range entries {
		ids := p.e.Users
		raw := len(p.e.Tokens) > 0
		if raw {
			// Strictly ascending already (pipeline.DecodeTokens).
			spans = append(spans, span{p.e.Campaign, true, p.e.Tokens[0].ID, p.e.Tokens[len(p.e.Tokens)-1].ID})
			continue
		}
		if len(ids) == 0 {
			continue // dead-lettered
		}
		for i := 1; i < len(ids); i++ {
			if ids[i] <= ids[i-1] {
				return true
			}
		}
		spans = append(spans, span{p.e.Campaign, false, ids[0], ids[len(ids)-1]})
	}
	for i, a := range spans {
		for _, b := range spans[:i] {
			if a.campaign == b.campaign && a.raw == b.raw && a.lo <= b.hi && b.lo <= a.hi {
				return true
			}
		}
	}
	return false
}

// holders are the people held by the targets of a batch built so far: the
// index of each one's holder among them.
type holders map[person]int

// add appends t to targets unless another target there holds its person.
// Nil holders hold nothing: every target is appended.
// A forced copy (replay --force) makes its holder forced: the operator
// asked for the resend, whichever copy came first; a copy that counts more
// rounds gives the holder its count.
func (h holders) add(targets []target, t target) []target {
	if h == nil {
		return append(targets, t) // no two targets can be one person (mayRepeat)
	}
	p := person{t.c.ID, t.user, t.raw != nil}
	if i, ok := h[p]; ok {
		targets[i].force = targets[i].force || t.force
		// The person's attempts so far are the most either copy counts:
		// the holder's own count would start its budget again.
		targets[i].rounds = max(targets[i].rounds, t.rounds)
		if len(t.forced) > 0 { // a new list: the holder's is its entry's
			targets[i].forced = targets[i].alsoForced(t.forced)
		}
		return targets
	}
	h[p] = len(targets)
	return append(targets, t)
}
