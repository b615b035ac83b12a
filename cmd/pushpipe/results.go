package main

import (
	"encoding/json"
	"os"
	"slices"

	"github.com/pushpipe/pushpipe/pipeline"
)

// ResultsCmd reads the results stream.
type ResultsCmd struct {
	Tail ResultsTailCmd `cmd:"" help:"Print result events as NDJSON as they are written, until interrupted."`
}

// ResultsTailCmd is `pushpipe results tail`.
type ResultsTailCmd struct {
	Campaign string   `help:"Only events of this campaign."`
	Outcome  []string `enum:"sent,failed,invalid" help:"Only these outcomes (sent, failed, invalid; repeat or comma-separate)."`
	From     string   `placeholder:"ID" help:"Start after this stream id (0: from the oldest retained event); default now."`
}

// Run prints until SIGINT/SIGTERM.
func (c *ResultsTailCmd) Run(g *Globals) error {
	rdb, err := g.Redis()
	if err != nil {
		return err
	}
	defer rdb.Close()
	enc := json.NewEncoder(os.Stdout)
	return pipeline.TailResults(g.Context(), rdb, g.Keys(), c.From, func(ev pipeline.ResultEvent) error {
		if c.Campaign != "" && ev.Campaign != c.Campaign {
			return nil
		}
		if len(c.Outcome) > 0 && !slices.Contains(c.Outcome, ev.Outcome) {
			return nil
		}
		return enc.Encode(ev)
	})
}
