package main

import "github.com/pushpipe/pushpipe/pipeline/schema"

// MigrateCmd applies the schema.
type MigrateCmd struct{}

// Run applies every pending migration, logging each one it applies.
func (c *MigrateCmd) Run(g *Globals) error {
	if g.DatabaseURL == "" {
		// pgx reads an empty URL as libpq's defaults: the PG* variables
		// and the local socket, a database nobody named to migrate.
		return errNoDatabase
	}
	// Reach the server as every command does first, so that a wrong host,
	// port or password is named with the variable to check, where goose's
	// "failed to initialize: failed to connect" named neither.
	db, err := g.DB(1)
	if err != nil {
		return err
	}
	db.Close()
	applied, err := schema.Apply(g.Context(), g.DatabaseURL)
	if err != nil {
		return err
	}
	log := g.Logger()
	for _, m := range applied {
		log.Info().Int64("version", m.Version).Str("file", m.File).Dur("took", m.Took).Msg("migration applied")
	}
	log.Info().Int("applied", len(applied)).Msg("schema is up to date")
	return nil
}
