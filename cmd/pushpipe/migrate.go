package main

import "github.com/pushpipe/pushpipe/pipeline/schema"

// MigrateCmd applies the schema.
type MigrateCmd struct{}

// Run applies every pending migration.
func (c *MigrateCmd) Run(g *Globals) error {
	if err := schema.Migrate(g.Context(), g.DatabaseURL); err != nil {
		return err
	}
	log := g.Logger()
	log.Info().Msg("schema is up to date")
	return nil
}
