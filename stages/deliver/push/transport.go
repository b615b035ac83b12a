package push

import (
	"context"
	"errors"
	"net"
	"net/url"
)

// TransportReason is the Reason of a request that got no answer: "canceled",
// or "timeout: " or "network: " and the cause, cut to 200 bytes and without
// the request URL (which carries the device token and adds nothing).
func TransportReason(err error) string {
	if errors.Is(err, context.Canceled) {
		return "canceled"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timeout: " + msg
	}
	return "network: " + msg
}
