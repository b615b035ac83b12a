package main

import "fmt"

// AllCmd is a placeholder until issue #6 lands.
type AllCmd struct{}

// Run says that this role is not built yet.
func (c *AllCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe all is not built yet (issue #6)")
}
