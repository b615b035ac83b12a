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
		cfg := f.limits(api.Config{})
		if cfg.DeviceWriteRate != tt.want.DeviceWriteRate || cfg.MaxBodyBytes != tt.want.MaxBodyBytes || cfg.MaxBodyMemory != api.DefaultMaxBodyMemory {
			t.Errorf("pushpipe %v: the API gets rate %g, body %d, memory %d; want %g, %d, %d", tt.args,
				cfg.DeviceWriteRate, cfg.MaxBodyBytes, cfg.MaxBodyMemory, tt.want.DeviceWriteRate, tt.want.MaxBodyBytes, api.DefaultMaxBodyMemory)
		}
	}
}
