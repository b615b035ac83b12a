package main

import "fmt"

// ReplayCmd is a placeholder until issue #7 lands.
type ReplayCmd struct{}

// Run says that this role is not built yet.
func (c *ReplayCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe replay is not built yet (issue #7)")
}
