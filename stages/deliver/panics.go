package deliver

import (
	"fmt"
	"runtime/debug"

	"github.com/pushpipe/pushpipe/pipeline"
)

// panicked turns a panic recovered in one of deliver's own goroutines
// (feeders, workers, the marker) into the error of the round it worked for.
// The runner recovers only the handler's own goroutine: a panic anywhere
// else would end the process, and again after each restart, since the
// entry comes back. As pipeline.Panic, the entry is retried alone and in
// the end dead-lettered with the panic as its reason. The stack is only
// known here, so it is logged here.
func (h *Handler) panicked(p any) error {
	h.log.Error().Str("panic", fmt.Sprint(p)).Bytes("stack", debug.Stack()).Msg("deliver goroutine panicked")
	return pipeline.Panic(p)
}
