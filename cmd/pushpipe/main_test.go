package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/stages/api"
)

// parsers are parse's kong parsers, each on a CLI of its own, kept between
// tests: kong.New took 0.3-0.7 s under -race, most of the time of a test
// that parses a command line or two (~34 of them). A test holds the one it
// took until it ends (t.Cleanup), so the *CLI parse returns stays its own
// while it runs, and tests running in parallel, or holding two parses at
// once, each take another. Package-level, a test binary's: outliving each
// test is its point.
var parsers struct {
	sync.Mutex
	free []*kongCLI
}

// kongCLI is a kong and the CLI it parses into.
type kongCLI struct {
	k   *kong.Kong
	cli *CLI
}

// parse parses args as main does, without running anything, on a parser
// the test holds until it ends.
func parse(t *testing.T, args ...string) *CLI {
	t.Helper()
	p := takeParser(t)
	// Parse resets every flag to its default (fresh: and whether it was
	// given); the rest of the CLI is what Validate, hooks or a test set
	// (SendCmd's campaign, a list's writer, Globals' logger and registry,
	// built once): zeroed, as a new CLI has them. Kong's targets are the
	// fields' addresses, which stay.
	*p.cli = CLI{}
	if _, err := fresh(p.k).Parse(args); err != nil {
		t.Fatal(err)
	}
	return p.cli
}

// takeParser takes a free parser, or makes one, until t ends.
func takeParser(t *testing.T) *kongCLI {
	t.Helper()
	parsers.Lock()
	var p *kongCLI
	if n := len(parsers.free); n > 0 {
		p, parsers.free = parsers.free[n-1], parsers.free[:n-1]
	}
	parsers.Unlock()
	if p == nil {
		p = &kongCLI{cli: &CLI{}}
		k, err := kong.New(p.cli, options()...)
		if err != nil {
			t.Fatal(err)
		}
		p.k = k
	}
	t.Cleanup(func() {
		parsers.Lock()
		defer parsers.Unlock()
		parsers.free = append(parsers.free, p)
	})
	return p
}

// parse's parsers are reused from test to test, and a reused one parses
// as a new one would: kong's "was given" marks cleared (the xor of --user
// and --channel, once --user was given), the environment read anew, and
// what a test or Validate set outside the flags gone.
func TestParseReusesParsers(t *testing.T) {
	var first *CLI
	t.Run("user", func(t *testing.T) {
		first = parse(t, "send", "--app", "a", "--user", "1", "--title", "t")
		first.Campaigns.List.out = &strings.Builder{}
		first.Logger()
	})
	t.Run("channel", func(t *testing.T) {
		cli := parse(t, "send", "--app", "a", "--channel", "x", "--title", "t")
		if cli != first {
			t.Fatal("a new parser, not the one the last test gave back")
		}
		if len(cli.Send.Users) != 0 || len(cli.Send.msg.Users) != 0 || cli.Campaigns.List.out != nil || cli.reg != nil {
			t.Errorf("the last parse left --user %v, a message to %v, a writer (%t), a registry (%t)",
				cli.Send.Users, cli.Send.msg.Users, cli.Campaigns.List.out != nil, cli.reg != nil)
		}
	})
	t.Run("environment", func(t *testing.T) {
		t.Setenv("PUSHPIPE_PARTITIONS", "7")
		if cli := parse(t, "status"); cli.Partitions != 7 {
			t.Errorf("--partitions %d, want 7 from PUSHPIPE_PARTITIONS", cli.Partitions)
		}
	})
	t.Run("default again", func(t *testing.T) {
		if cli := parse(t, "status"); cli.Partitions != 16 {
			t.Errorf("--partitions %d, want its default 16", cli.Partitions)
		}
	})
}

// The API's limits have one default each, the package's constants (the
// flags read them rather than repeat a number), and `all` takes the same
// flags as `api`: its API is tuned as one alone.
func TestAPILimits(t *testing.T) {
	tests := []struct {
		args []string
		want ListenFlags
	}{
		{[]string{"api", "--listen", "127.0.0.1:0"}, ListenFlags{DeviceWriteRate: api.DefaultDeviceWriteRate, MaxBodyBytes: api.DefaultMaxBodyBytes}},
		{[]string{"all"}, ListenFlags{DeviceWriteRate: api.DefaultDeviceWriteRate, MaxBodyBytes: api.DefaultMaxBodyBytes}},
		{[]string{"api", "--listen", "127.0.0.1:0", "--device-write-rate", "5", "--max-body-bytes", "2048"}, ListenFlags{DeviceWriteRate: 5, MaxBodyBytes: 2048}},
		{[]string{"all", "--device-write-rate", "5", "--max-body-bytes", "2048"}, ListenFlags{DeviceWriteRate: 5, MaxBodyBytes: 2048}},
	}
	for _, tt := range tests {
		var f ListenFlags
		switch c := command(t, tt.args...).(type) {
		case *APICmd:
			f = c.ListenFlags
		case *AllCmd:
			f = c.ListenFlags
		}
		cfg, err := f.limits(api.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if cfg.DeviceWriteRate != tt.want.DeviceWriteRate || cfg.MaxBodyBytes != tt.want.MaxBodyBytes || cfg.MaxBodyMemory != api.DefaultMaxBodyMemory {
			t.Errorf("pushpipe %v: the API gets rate %g, body %d, memory %d; want %g, %d, %d", tt.args,
				cfg.DeviceWriteRate, cfg.MaxBodyBytes, cfg.MaxBodyMemory, tt.want.DeviceWriteRate, tt.want.MaxBodyBytes, api.DefaultMaxBodyMemory)
		}
	}
}

// The wrong-token throttle's flags: the package's defaults (proxies on the
// private networks trusted) and 0 to turn it off. A proxy list that does
// not parse is refused at parse time (TestUsageErrors).
func TestAuthFailFlags(t *testing.T) {
	defaults, err := api.ParseTrustedProxies(api.DefaultTrustedProxies)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		rate    float64
		burst   int
		proxies int
	}{
		{[]string{"api", "--listen", ":0"}, api.DefaultAuthFailRate, api.DefaultAuthFailBurst, len(defaults)},
		{[]string{"all", "--auth-fail-rate", "0.5", "--auth-fail-burst", "5", "--trusted-proxies", "10.1.0.0/16"}, 0.5, 5, 1},
		{[]string{"api", "--listen", ":0", "--auth-fail-rate", "0", "--trusted-proxies", ""}, -1, api.DefaultAuthFailBurst, 0},
	}
	for _, tt := range tests {
		var f ListenFlags
		switch c := command(t, tt.args...).(type) {
		case *APICmd:
			f = c.ListenFlags
		case *AllCmd:
			f = c.ListenFlags
		}
		cfg, err := f.limits(api.Config{})
		if err != nil || cfg.AuthFailRate != tt.rate || cfg.AuthFailBurst != tt.burst || len(cfg.TrustedProxies) != tt.proxies {
			t.Errorf("pushpipe %v: rate %g, burst %d, %d proxies, %v; want %g, %d, %d", tt.args,
				cfg.AuthFailRate, cfg.AuthFailBurst, len(cfg.TrustedProxies), err, tt.rate, tt.burst, tt.proxies)
		}
	}
}
