package pipeline

import (
	"context"
	"sync"
)

// RunGroup runs every function until ctx is cancelled or one of them fails;
// then it cancels the others, waits for all and returns the first error. This
// is how `pushpipe all` runs the API and every stage in one process.
func RunGroup(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for _, fn := range fns {
		wg.Go(func() {
			if err := fn(ctx); err != nil {
				once.Do(func() { first = err })
				cancel()
			}
		})
	}
	wg.Wait()
	return first
}
