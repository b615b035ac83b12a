package main

import "fmt"

// DevCmd is a placeholder until issue #6 lands.
type DevCmd struct{}

// Run says that this role is not built yet.
func (c *DevCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe dev is not built yet (issue #6)")
}
