package main

import "fmt"

// DLQCmd is a placeholder until issue #7 lands.
type DLQCmd struct{}

// Run says that this role is not built yet.
func (c *DLQCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe dlq is not built yet (issue #7)")
}
