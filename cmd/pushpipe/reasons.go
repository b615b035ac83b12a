package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pushpipe/pushpipe/pipeline/campaign"
)

// withReasons adds to v, when some of its devices failed or were invalid,
// why (campaign.Reasons, what the console's "Failures by reason" shows):
// "failed 873" alone did not say that they expired under a cap too low for
// the TTL, or that the app has no credentials for a platform. The counts
// stand without them: a read that fails leaves v as it was.
func (s campaignSource) withReasons(ctx context.Context, v progressView) progressView {
	if v.Failed+v.InvalidTokens == 0 {
		return v
	}
	if m, err := campaign.Reasons(ctx, s.rdb, s.keys, v.ID); err == nil && len(m) > 0 {
		v.Reasons = m
	}
	return v
}

// maxReasons is how many reasons a progress view prints, most devices
// first; the console lists them all.
const maxReasons = 5

// reasonsLine is "  why: fcm expired 522, apns expired 351", most devices
// first, then by reason so a refresh keeps their order; "" for none.
func reasonsLine(reasons map[string]int64) string {
	if len(reasons) == 0 {
		return ""
	}
	keys := slices.SortedFunc(maps.Keys(reasons), func(a, b string) int {
		return cmp.Or(cmp.Compare(reasons[b], reasons[a]), strings.Compare(a, b))
	})
	parts := make([]string, 0, min(len(keys), maxReasons)+1)
	for _, k := range keys[:min(len(keys), maxReasons)] {
		parts = append(parts, k+" "+thousands(reasons[k]))
	}
	if more := len(keys) - maxReasons; more > 0 {
		parts = append(parts, fmt.Sprintf("%d more in the console", more))
	}
	return "  why: " + strings.Join(parts, ", ") + "\n"
}
