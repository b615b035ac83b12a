package pipeline

// queues hand read batches to handlers, one per lane.
type queues struct{ bulk, express chan *Batch }

func (q queues) of(l Lane) chan *Batch {
	if l == Express {
		return q.express
	}
	return q.bulk
}

// next yields batches to a shared handler until both queues are closed: an
// express one whenever one is waiting, except that right after an express
// batch a bulk one that is waiting goes first. Express has handlers of its
// own besides, so it waits behind bulk only when it has more work than all
// of them and half the shared ones; bulk keeps half of the shared handlers
// however busy express is, where strict priority let a high-priority
// campaign (it rides the express lane) stop every normal one while it ran.
func (q queues) next() func(yield func(*Batch) bool) {
	return func(yield func(*Batch) bool) {
		chans := [2]chan *Batch{Bulk: q.bulk, Express: q.express}
		last := Bulk
		for chans[Bulk] != nil || chans[Express] != nil {
			order := [2]Lane{Express, Bulk}
			if last == Express {
				order = [2]Lane{Bulk, Express}
			}
			var (
				b    *Batch
				ok   bool
				from Lane
				got  bool
			)
			for _, l := range order {
				if b, ok, got = tryRecv(chans[l]); got {
					from = l
					break
				}
			}
			if !got {
				select {
				case b, ok = <-chans[Express]:
					from = Express
				case b, ok = <-chans[Bulk]:
					from = Bulk
				}
			}
			if !ok {
				chans[from] = nil // closed
				continue
			}
			last = from
			if !yield(b) {
				return
			}
		}
	}
}

// tryRecv receives from c if a batch (or its close) is waiting; a nil c
// never has one.
func tryRecv(c chan *Batch) (b *Batch, ok, got bool) {
	select {
	case b, ok = <-c:
		return b, ok, true
	default:
		return nil, false, false
	}
}
