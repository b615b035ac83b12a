package main

import "fmt"

// BenchCmd is a placeholder until issue #6 lands.
type BenchCmd struct{}

// Run says that this role is not built yet.
func (c *BenchCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe bench is not built yet (issue #6)")
}
