package main

import (
	"strings"
	"testing"
)

// A subcommand's help lists its own flags first and the global ones after,
// under their title: kong lists a parent's flags first, so `send --help`
// opened with a screen of Redis and PostgreSQL settings before --app.
func TestHelpListsTheCommandsOwnFlagsFirst(t *testing.T) {
	tests := []struct {
		give       []string
		own, later string // own's flag comes before the title, later's after it
	}{
		{[]string{"send"}, "--app=", "--redis-addr="},
		{[]string{"status"}, "--json", "--redis-addr="},
		{[]string{"dlq", "list"}, "--stream=", "--redis-addr="},
		{[]string{"api"}, "--listen=", "--database-url="},
		{[]string{"deliver"}, "--tps=", "--partitions="},
	}
	help := helper(t)
	for _, tt := range tests {
		text := help(tt.give...)
		own, title, later := strings.Index(text, tt.own), strings.Index(text, "\nGlobal flags (Redis, PostgreSQL, logging; also by environment):\n"), strings.Index(text, tt.later)
		if own < 0 || title < 0 || later < 0 || !(own < title && title < later) {
			t.Errorf("pushpipe %s --help: %s at %d, the globals' title at %d, %s at %d; want them in that order:\n%s",
				strings.Join(tt.give, " "), tt.own, own, title, tt.later, later, text)
		}
	}
	if top := help(); strings.Contains(top, "Global flags (") || !strings.Contains(top, "--redis-addr=") {
		t.Errorf("pushpipe --help: want the globals as its flags, untitled:\n%s", top)
	}
}
