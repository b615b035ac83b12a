package main

import (
	"strings"
	"testing"
)

// The rate given before the campaign's id (`campaigns rate -5 c1`, the
// order swapped) is said to be that: the refusal named "c1" as a rate that
// must be a number, and -5, read as the id, not at all. It says the order
// and the line to type, with the rate's range when the number is out of
// it. A line in the right order keeps its own refusal.
func TestCampaignsRateSaysTheIDComesFirst(t *testing.T) {
	t.Parallel()
	k := takeParser(t).k
	const order = `pushpipe: campaigns rate: got "c1" as the rate and `
	tests := []struct {
		give []string
		want string
	}{
		{[]string{"campaigns", "rate", "-5", "c1"}, order + `-5 as the campaign's id: the id comes first, pushpipe campaigns rate c1 N, ` +
			`where the rate N must be a whole number of sends per second from 0 (no cap of its own) to 1000000 (got -5) (see pushpipe campaigns rate --help)`},
		{[]string{"campaigns", "rate", "5", "c1"}, order + `5 as the campaign's id: the id comes first, pushpipe campaigns rate c1 5 (see pushpipe campaigns rate --help)`},
		{[]string{"campaigns", "rate", "5", "--json", "c1"}, order + `5 as the campaign's id: the id comes first, pushpipe campaigns rate c1 5 (see`},
		{[]string{"campaigns", "rate", "-5", "c1", "--json"}, order + `-5 as the campaign's id: the id comes first, pushpipe campaigns rate c1 N, where`},
		{[]string{"campaigns", "rate", "2000000", "c1"}, order + `2000000 as the campaign's id: the id comes first, pushpipe campaigns rate c1 N, where the rate N must be ` +
			`a whole number of sends per second from 0 (no cap of its own) to 1000000 (got 2000000)`},
		// In order, or a word that is no id either: the rate's own refusal.
		{[]string{"campaigns", "rate", "c1", "-5"}, "pushpipe: campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got -5 (see"},
		{[]string{"campaigns", "rate", "c1", "abc"}, `pushpipe: campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got "abc" (see`},
		{[]string{"campaigns", "rate", "5", "a/b"}, `pushpipe: campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got "a/b" (see`},
	}
	for _, tt := range tests {
		_, err := parseArgs(fresh(k), tt.give)
		if err == nil {
			t.Errorf("pushpipe %s: accepted", strings.Join(tt.give, " "))
			continue
		}
		if msg := usageError(err); !strings.HasPrefix(msg, tt.want) {
			t.Errorf("pushpipe %s:\n%s\nwant it to start\n%s", strings.Join(tt.give, " "), msg, tt.want)
		}
	}
}
