package main

import (
	"strings"
	"testing"
)

// `import subscribers --channel` is checked by the flag's name before the
// file is read, as the other commands' flags are.
func TestImportChannelFlag(t *testing.T) {
	tests := []struct {
		channel, err string // err "": accepted
	}{
		{"news", ""},
		{"101", ""},
		{"a/b", "--channel: has only A-Z a-z 0-9 _ . : - characters"},
		{strings.Repeat("x", 200), "--channel: must be 1–128 characters; got 200"},
	}
	for _, tt := range tests {
		t.Run(tt.channel[:min(len(tt.channel), 10)], func(t *testing.T) {
			_, err := kongParse("import", "subscribers", "--channel", tt.channel, "-")
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}
