package main

import (
	"io"
	"text/tabwriter"
)

// newTable is a tabwriter over w, as every table of the CLI is drawn, with
// the spaces ending each line dropped: tabwriter pads the last column it
// aligns, and empty cells, so rows ended in runs of spaces that a diff, a
// `grep 'x$'` or an editor showing whitespace tripped on.
func newTable(w io.Writer, flags uint) *tabwriter.Writer {
	return tabwriter.NewWriter(&trimRight{w: w}, 0, 0, 2, ' ', flags)
}

// trimRight writes what it is given but the spaces before a line break or
// the end: it holds a run of spaces until a character other than a line
// break follows it.
type trimRight struct {
	w      io.Writer
	spaces int // held
	buf    []byte
}

func (t *trimRight) Write(p []byte) (int, error) {
	t.buf = t.buf[:0]
	for _, b := range p {
		switch b {
		case ' ':
			t.spaces++
			continue
		case '\n':
			t.spaces = 0
		}
		for ; t.spaces > 0; t.spaces-- {
			t.buf = append(t.buf, ' ')
		}
		t.buf = append(t.buf, b)
	}
	if _, err := t.w.Write(t.buf); err != nil {
		return 0, err
	}
	return len(p), nil
}
