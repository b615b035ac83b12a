package dedupe

// Watching is how many cancel flags h watches.
func Watching(h *Handler) int { return h.cancels.Watching() }
