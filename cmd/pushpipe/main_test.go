package main

import (
	"testing"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/stages/api"
)

// parse parses args as main does, without running anything.
func parse(t *testing.T, args ...string) *CLI {
	t.Helper()
	cli := &CLI{}
	k, err := kong.New(cli, options()...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Parse(args); err != nil {
		t.Fatal(err)
	}
	return cli
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
