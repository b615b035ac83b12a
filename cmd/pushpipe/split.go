package main

import "fmt"

// SplitCmd is a placeholder until issue #4 lands.
type SplitCmd struct{}

// Run says that this role is not built yet.
func (c *SplitCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe split is not built yet (issue #4)")
}
