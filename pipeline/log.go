package pipeline

import (
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// NewLogger builds the process logger: JSON by default, human-readable on a
// terminal, level from PUSHPIPE_LOG_LEVEL (info when empty or invalid: zerolog
// parses "" as NoLevel, which would silently drop every event).
func NewLogger(w io.Writer, level string) zerolog.Logger {
	lvl := zerolog.InfoLevel
	if level != "" {
		if l, err := zerolog.ParseLevel(level); err == nil && l != zerolog.NoLevel {
			lvl = l
		}
	}
	if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}
