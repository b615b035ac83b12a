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
	// "failed to initialize: failed to connect" named neither. Not DB:
	// its schema check refuses the database migrate is to bring up.
	db, err := g.openDB(1)
	if err != nil {
		return err
	}
	db.Close()
	rep, err := schema.Apply(g.Context(), g.DatabaseURL)
	log := g.Logger()
	for _, m := range rep.Applied {
		log.Info().Int64("version", m.Version).Str("file", m.File).Dur("took", m.Took).Msg("migration applied")
	}
	for _, name := range rep.Rebuilt {
		log.Warn().Str("index", name).Msg("index rebuilt: an interrupted concurrent build had left it invalid")
	}
	if err != nil {
		return err
	}
	log.Info().Int("applied", len(rep.Applied)).Msg("schema is up to date")
	return nil
}
