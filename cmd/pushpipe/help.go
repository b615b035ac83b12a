package main

import (
	"errors"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// globalsUsed names, for the subcommands that do not use every global flag,
// those they do: `pushpipe fakeprovider --help` should not offer a Redis
// address it never reads. A subcommand missing here uses them all. (The
// flags are still accepted everywhere, so one environment serves every
// subcommand.)
var globalsUsed = map[string][]string{
	"migrate":      {"database-url", "log-level"},
	"fakeprovider": {},
	// dev hands a given Redis's credentials to every process it starts
	// (DevCmd.Run), so its help offers them all.
	"dev":     append(redisGlobals(), "database-url", "partitions"),
	"bench":   append(redisGlobals(), "database-url", "partitions"),
	"dlq":     append(redisGlobals(), "partitions", "prefix", "log-level"),
	"version": {},
}

// redisGlobals are the flags of a Redis connection (Globals.RedisConfig): a
// command that connects with them offers them all, or an operator of a
// Redis with a password or TLS cannot tell how to reach it.
func redisGlobals() []string {
	return []string{"redis-addr", "redis-username", "redis-password-file", "redis-tls-ca-file", "redis-tls-cert-file", "redis-tls-key-file"}
}

// helpPrinter is kong's help with the global flags a subcommand does not
// use hidden, and --version shown only at the top.
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
	node := ctx.Selected()
	if node == nil {
		return kong.DefaultHelpPrinter(options, ctx)
	}
	top := node
	for top.Parent != nil && top.Parent.Type != kong.ApplicationNode {
		top = top.Parent
	}
	used, some := globalsUsed[top.Name]
	var hidden []*kong.Flag
	for _, f := range ctx.Model.Flags {
		hide := f.Name == "version" || some && f.Name != "help" && !slices.Contains(used, f.Name)
		if hide && !f.Hidden {
			f.Hidden = true
			hidden = append(hidden, f)
		}
	}
	defer func() {
		for _, f := range hidden {
			f.Hidden = false
		}
	}()
	return kong.DefaultHelpPrinter(options, ctx)
}

// usageError is a command line kong refused, in one line that says where
// the help is (no usage dump: the mistake would scroll out of sight).
func usageError(err error) string {
	cmd := "pushpipe"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
		cmd = strings.Join(strings.Fields(pe.Context.Selected().FullPath()), " ")
	}
	return "pushpipe: " + strings.ReplaceAll(err.Error(), "\n", "; ") + " (see " + cmd + " --help)"
}
