package webhook

import "time"

// QuietFor is quietFor for the package's external tests: the pause a
// receiver's answer asks for, at the moment a test chooses (a handler
// waiting in the rate cap, which no receiver's timing can pin down).
func (h *Handler) QuietFor(d time.Duration) { h.quietFor(d) }
