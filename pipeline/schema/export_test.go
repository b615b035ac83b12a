package schema

import (
	"context"
	"fmt"

	"github.com/pressly/goose/v3"
)

// DownTo rolls the schema back to version with the migrations' own Down
// sections, as an older release left it: a test that rewinds by hand
// would have to know every migration after version.
func DownTo(ctx context.Context, databaseURL string, version int64) error {
	err := withProvider(ctx, databaseURL, func(p *goose.Provider) error {
		_, err := p.DownTo(ctx, version)
		return err
	})
	if err != nil {
		return fmt.Errorf("down to %d: %w", version, err)
	}
	return nil
}
