package deliver

import (
	"context"
	"sync/atomic"

	"github.com/pushpipe/pushpipe/stages/deliver/push"
)

// NullSender accepts every notification without any network: the bench uses
// it (--sink null) to measure the pipeline alone. It counts what it got.
type NullSender struct {
	n atomic.Int64
}

var _ push.Sender = (*NullSender)(nil)

// Send counts n and reports it sent.
func (s *NullSender) Send(ctx context.Context, n push.Notification) push.Result {
	s.n.Add(1)
	return push.Result{Outcome: push.Sent, Status: 200}
}

// Sent is how many notifications were sent.
func (s *NullSender) Sent() int64 { return s.n.Load() }
