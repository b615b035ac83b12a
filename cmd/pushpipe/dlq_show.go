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
	"time"

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
		fmt.Fprintf(w, "  %-10s %s\n", f, d.FieldText(f))
	}
}
