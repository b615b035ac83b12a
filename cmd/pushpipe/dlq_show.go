package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
)

// DLQShowCmd is `pushpipe dlq show ID`.
type DLQShowCmd struct {
	ID   string `arg:"" help:"The dead letter's id (from dlq list)."`
	JSON bool   `name:"json" help:"Print JSON."`
}

// Validate refuses an id no dead letter can have before Redis is dialled.
func (c *DLQShowCmd) Validate(kctx *kong.Context) error {
	if !given(kctx, "id") {
		return nil // kong says it is required
	}
	return validLetterIDs([]string{c.ID})
}

// validLetterIDs says every id of ids that no dead letter can have, each
// as an ID argument.
func validLetterIDs(ids []string) error {
	var errs []error
	for _, id := range ids {
		if err := pipeline.CheckDeadLetterID(id); err != nil {
			errs = append(errs, fmt.Errorf("ID %w", err))
		}
	}
	return errors.Join(errs...)
}

// Run shows one dead letter; id batches (u, m) are decoded.
func (c *DLQShowCmd) Run(g *Globals) error {
	rdb, err := g.RedisNow()
	if err != nil {
		return err
	}
	defer rdb.Close()
	q := pipeline.NewDLQ(rdb, g.Keys())
	d, err := within(g.Context(), refreshTimeout, func(ctx context.Context) (pipeline.DeadLetter, error) { return q.Show(ctx, c.ID) })
	if err != nil {
		return err
	}
	if c.JSON {
		return json.NewEncoder(os.Stdout).Encode(d)
	}
	printDeadLetter(os.Stdout, d)
	return nil
}

func printDeadLetter(w io.Writer, d pipeline.DeadLetter) {
	fmt.Fprintf(w, "id          %s (%s)\n", d.ID, d.At.Format(time.RFC3339Nano))
	fmt.Fprintf(w, "from        %s entry %s (group %s, consumer %s)\n", d.Stream, d.OrigID, d.Group, d.Consumer)
	fmt.Fprintf(w, "deliveries  %d\n", d.Deliveries)
	fmt.Fprintf(w, "reason      %s\n", d.Error)
	if d.Malformed != "" {
		fmt.Fprintf(w, "MALFORMED   %s (cannot be retried; drop it)\n", d.Malformed)
	}
	fmt.Fprintln(w, "fields")
	for _, f := range slices.Sorted(maps.Keys(d.Fields)) {
		v := fieldValue(f, d.Fields[f])
		if f == pipeline.FieldEvents {
			v = eventsValue(d.Fields, v)
		}
		fmt.Fprintf(w, "  %-10s %s\n", f, v)
	}
}

// eventsValue shows a results entry's events (binary records, printed
// quoted they were a screen of escapes): how many, and the first few as
// results tail prints their outcome; raw when they do not decode.
func eventsValue(fields map[string]string, raw string) string {
	evs, err := pipeline.ParseResults(fields)
	if err != nil {
		return raw
	}
	parts := make([]string, 0, 6)
	for i, e := range evs {
		if i == 5 {
			parts = append(parts, "…")
			break
		}
		p := fmt.Sprintf("user %d %s %s", e.UserID, e.Platform, e.Outcome)
		if e.Reason != "" {
			p += " (" + e.Reason + ")"
		}
		parts = append(parts, p)
	}
	return fmt.Sprintf("%s: %s", plural(int64(len(evs)), "event"), strings.Join(parts, "; "))
}

// fieldValue shows a field readably: id batches decoded, binary quoted.
func fieldValue(name, v string) string {
	if name == pipeline.FieldUsers || name == pipeline.FieldMuted {
		if ids, err := pipeline.DecodeIDs(v); err == nil {
			parts := make([]string, 0, 11)
			for i, id := range ids {
				if i == 10 {
					parts = append(parts, "…")
					break
				}
				parts = append(parts, strconv.FormatInt(id, 10))
			}
			return fmt.Sprintf("%d user ids: %s", len(ids), strings.Join(parts, " "))
		}
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 }) {
		return strconv.Quote(v)
	}
	return v
}
