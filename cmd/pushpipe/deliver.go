package main

import "fmt"

// DeliverCmd is a placeholder until issue #5 lands.
type DeliverCmd struct{}

// Run says that this role is not built yet.
func (c *DeliverCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe deliver is not built yet (issue #5)")
}
