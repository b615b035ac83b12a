package main

import "fmt"

// FakeproviderCmd is a placeholder until issue #5 lands.
type FakeproviderCmd struct{}

// Run says that this role is not built yet.
func (c *FakeproviderCmd) Run(g *Globals) error {
	return fmt.Errorf("pushpipe fakeprovider is not built yet (issue #5)")
}
