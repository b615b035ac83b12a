package push

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestTransportReason(t *testing.T) {
	token := "https://api.push.apple.com/3/device/SECRETTOKEN"
	tests := []struct {
		name string
		give error
		want string
	}{
		{"canceled", fmt.Errorf("post: %w", context.Canceled), "canceled"},
		{"deadline, URL dropped", &url.Error{Op: "Post", URL: token, Err: context.DeadlineExceeded}, "timeout: context deadline exceeded"},
		{"network, URL dropped", &url.Error{Op: "Post", URL: token, Err: errors.New("connection refused")}, "network: connection refused"},
		{"long cause cut", errors.New(strings.Repeat("x", 300)), "network: " + strings.Repeat("x", 200)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := TransportReason(tt.give); got != tt.want {
				t.Errorf("TransportReason = %q, want %q", got, tt.want)
			}
		})
	}
}
