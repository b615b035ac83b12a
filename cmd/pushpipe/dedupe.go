package main

import "fmt"

// DedupeCmd is a placeholder until issue #4 lands.
type DedupeCmd struct{}

// Run says that this role is not built yet.
func (c *DedupeCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe dedupe is not built yet (issue #4)")
}
