package main

import "fmt"

// StatusCmd is a placeholder until issue #7 lands.
type StatusCmd struct{}

// Run says that this role is not built yet.
func (c *StatusCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe status is not built yet (issue #7)")
}
