package pipelinetest

import (
	"bytes"
	"io"
	"sync"
	"testing"
)

// Logs is a zerolog writer a test reads while the code under test writes
// to it from its own goroutines.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// LineLogger forwards a child process's output to t's log, a line at a
// time, each line after prefix (the child's name): cmd.Stderr of the
// tests that run pushpipe as a process.
func LineLogger(t testing.TB, prefix string) io.Writer {
	return &lineLogger{t: t, prefix: prefix}
}

type lineLogger struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
}

func (w *lineLogger) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}
