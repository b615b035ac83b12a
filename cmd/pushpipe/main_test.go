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

// The API's device write rate has one default, the package's constant: the
// flag reads it rather than repeating a number.
func TestDeviceWriteRateDefault(t *testing.T) {
	cli := parse(t, "api", "--listen", "127.0.0.1:0")
	if cli.API.DeviceWriteRate != api.DefaultDeviceWriteRate {
		t.Fatalf("pushpipe api --device-write-rate defaults to %g, the API's default is %d", cli.API.DeviceWriteRate, api.DefaultDeviceWriteRate)
	}
}
