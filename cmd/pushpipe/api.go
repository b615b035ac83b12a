package main

import "fmt"

// APICmd is a placeholder until issue #3 lands.
type APICmd struct{}

// Run says that this role is not built yet.
func (c *APICmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe api is not built yet (issue #3)")
}
