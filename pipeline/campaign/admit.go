package campaign

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// Admit is a check only a new campaign or direct message must pass: its app
// is known, its payload fits, someone would receive it. Create and
// CreateMessage run it after the request's own validation (Normalize) and
// before the row is written, and return its error as it is.
//
// An id already stored is answered from its row instead (the same content:
// created=false; other content: ErrConflict), whatever an Admit would
// answer now. Those answers change after creation: an app leaves the apps
// file, a one-off channel empties once sent, a newer release refuses what
// an older one stored; and a client retrying a request whose answer it
// lost must learn that it was accepted, not be told to change it (under a
// new id it would be sent twice).
type Admit func(ctx context.Context, c Campaign) error

// admitRefusal is an Admit's error on its way out of storedOr, told apart
// from the store's own so that it is returned unwrapped.
type admitRefusal struct{ err error }

func (r admitRefusal) Error() string { return r.err.Error() }
func (r admitRefusal) Unwrap() error { return r.err }

// storedOr answers a create from the row already stored under c's id (same:
// whether it is queued, or why it is not the same record), else runs admit
// and insert. The insert goes first when admit passes, its ON CONFLICT
// being the lookup: one query for a new id, the common case (a lookup
// before it was a PostgreSQL round trip more for every new message). An
// insert that finds the id taken (pgx.ErrNoRows: stored before, or by a
// request with the same id meanwhile) is answered from that row, and so is
// an admit that refuses a stored id: only a new one must pass it.
func storedOr(ctx context.Context, c Campaign, admit []Admit, same func() (queued bool, err error), insert func() error) (bool, error) {
	for _, a := range admit {
		if err := a(ctx, c); err != nil {
			queued, serr := same()
			if errors.Is(serr, pgx.ErrNoRows) {
				return false, admitRefusal{err}
			}
			return queued, serr
		}
	}
	if err := insert(); !errors.Is(err, pgx.ErrNoRows) {
		return false, err
	}
	return same()
}
