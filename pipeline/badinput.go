package pipeline

import (
	"errors"
	"strings"
)

// BadInputError marks a dead letter's reason as the entry's own fault: its
// fields are malformed or name nothing a stage can take (a campaign id no
// campaign can have), so the stage refuses the same fields every time.
// `pushpipe dlq retry` puts such a letter back, and within seconds it is
// dead-lettered again; the DLQ keeps the mark (DeadLetter.BadInput) so the
// retry can say so, whichever stage wrote it and in whatever words.
type BadInputError struct{ Err error }

func (e *BadInputError) Error() string { return e.Err.Error() }
func (e *BadInputError) Unwrap() error { return e.Err }

// BadInput wraps the reason a handler gives Batch.DeadLetter for input that
// fails again whatever is retried: a stage's parse and field checks use
// it. Not for what a later retry may find fixed (a campaign row not there
// yet, a database refusing), whose reasons go unwrapped.
func BadInput(err error) error { return &BadInputError{Err: err} }

// isBadInput is whether a dead-letter reason was marked BadInput.
func isBadInput(reason error) bool {
	var bad *BadInputError
	return errors.As(reason, &bad)
}

// DLQBadInput is the DLQ entry's field that marks it bad input ("1"),
// absent otherwise.
const DLQBadInput = "bad_input"

// legacyBadInput is whether a letter written before DLQBadInput existed
// was bad input: ingest's were the only ones the retry could tell, by
// their reason's words, and a DLQ keeps its letters across an upgrade.
func legacyBadInput(reason string) bool {
	return strings.HasPrefix(reason, "malformed ingest entry: ")
}
