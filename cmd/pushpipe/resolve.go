package main

import "fmt"

// ResolveCmd is a placeholder until issue #4 lands.
type ResolveCmd struct{}

// Run says that this role is not built yet.
func (c *ResolveCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe resolve is not built yet (issue #4)")
}
