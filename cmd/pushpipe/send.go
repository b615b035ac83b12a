package main

import "fmt"

// SendCmd is a placeholder until issue #4 lands.
type SendCmd struct{}

// Run says that this role is not built yet.
func (c *SendCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe send is not built yet (issue #4)")
}
