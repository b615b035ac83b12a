package main

import "fmt"

// IngestCmd is a placeholder until issue #3 lands.
type IngestCmd struct{}

// Run says that this role is not built yet.
func (c *IngestCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe ingest is not built yet (issue #3)")
}
