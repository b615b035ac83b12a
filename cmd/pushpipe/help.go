package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
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

// helpPrinter is printHelp with the flags of an xor group shown as a
// choice (xorUsage) and the arguments named as errors name them (argUsage).
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
	var buf bytes.Buffer
	out := ctx.Stdout
	ctx.Stdout = &buf
	err := printHelp(options, ctx)
	ctx.Stdout = out
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, argUsage(ctx.Model.Node, xorUsage(ctx.Model.Node, buf.String())))
	return err
}

// argUsage writes kong's positional placeholders in help as argNames
// writes them in errors and the README writes them in commands: help said
// "Usage: pushpipe dlq show <id>" and "<id>  The dead letter's id", the
// error "ID: is required". Only the names of the model's arguments are
// rewritten; in the Arguments column the two characters of "<>" become
// spaces, so the wrapped lines of a help text stay under its first.
func argUsage(root *kong.Node, help string) string {
	names := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, a := range n.Positional {
			names[a.Name] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(root)
	for name := range names {
		re := regexp.MustCompile(`<` + regexp.QuoteMeta(name) + `>(\]?)(  +)?`)
		help = re.ReplaceAllStringFunc(help, func(m string) string {
			sub := re.FindStringSubmatch(m)
			pad := sub[2]
			if pad != "" {
				pad += "  " // a column gap: keep the column
			}
			return strings.ToUpper(name) + sub[1] + pad
		})
	}
	return help
}

// xorUsage writes the required flags of one xor group in help as the choice
// they are: kong's usage line "pushpipe send --app=STRING --channel=CHANNEL
// --user=USER,..." read as if both were needed, which the parser refuses.
func xorUsage(root *kong.Node, help string) string {
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		groups := map[string][]string{}
		var order []string
		for _, f := range n.Flags {
			if !f.Required || len(f.Xor) == 0 {
				continue
			}
			x := f.Xor[0]
			if _, ok := groups[x]; !ok {
				order = append(order, x)
			}
			groups[x] = append(groups[x], f.Summary())
		}
		for _, x := range order {
			if g := groups[x]; len(g) > 1 {
				help = strings.ReplaceAll(help, strings.Join(g, " "), "("+strings.Join(g, " | ")+")")
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(root)
	return help
}

// globalsTitle heads the global flags in a subcommand's help (printHelp).
const globalsTitle = "Global flags (Redis, PostgreSQL, logging; also by environment):"

// printHelp is kong's help with the global flags a subcommand does not use
// hidden, --version shown only at the top, and the globals a subcommand
// does use after its own flags, under their own title: kong lists a
// node's parents' flags first, so `send --help` opened with a screen of
// Redis and PostgreSQL settings before --app, --channel or --user. kong
// writes ungrouped flags first (its collectFlagGroups), so the globals
// are put in a group for the help's duration; at the top, where they are
// the only flags, they stay "Flags:".
func printHelp(options kong.HelpOptions, ctx *kong.Context) error {
	node := ctx.Selected()
	if node == nil {
		return kong.DefaultHelpPrinter(options, ctx)
	}
	top := node
	for top.Parent != nil && top.Parent.Type != kong.ApplicationNode {
		top = top.Parent
	}
	used, some := globalsUsed[top.Name]
	globals := &kong.Group{Key: "globals", Title: globalsTitle}
	var hidden, grouped []*kong.Flag
	for _, f := range ctx.Model.Flags {
		hide := f.Name == "version" || some && f.Name != "help" && !slices.Contains(used, f.Name)
		if hide && !f.Hidden {
			f.Hidden = true
			hidden = append(hidden, f)
		}
		if f.Name != "help" && f.Group == nil {
			f.Group = globals
			grouped = append(grouped, f)
		}
	}
	defer func() {
		for _, f := range hidden {
			f.Hidden = false
		}
		for _, f := range grouped {
			f.Group = nil
		}
	}()
	return kong.DefaultHelpPrinter(options, ctx)
}

// parseArgs parses args as k.Parse does, but reads a negative number
// after a flag as its value: kong takes "-5" in `--rate-per-second -5`
// for short flags and said `expected int value but got "-5" (short flag);
// perhaps try --rate-per-second="-5"?`, naming neither the allowed values
// nor the mistake. Parsed again as --rate-per-second=-5, the flag's own
// check says both ("must be ... from 1 to 1000000, or 0 ...; got -5").
// A negative number where an argument goes (`campaigns rate ID -5`, `users
// show -5`) is read as that argument (see negativesAfterDash), so its
// command's check says what it may be where kong said "unknown flag -5".
// Only a command line kong refused is parsed again, so nothing it took
// reads otherwise; a refused parse changes no flag (Parse traces before it
// applies), so the next starts clean.
func parseArgs(k *kong.Kong, args []string) (*kong.Context, error) {
	ctx, err := k.Parse(args)
	if err == nil {
		return ctx, nil
	}
	if strings.Contains(err.Error(), "(short flag)") {
		joined := joinNegativeValues(args)
		if slices.Equal(joined, args) {
			return ctx, err
		}
		args = joined
		if ctx, err = k.Parse(args); err == nil {
			return ctx, nil
		}
	}
	var pe *kong.ParseError
	if !errors.As(err, &pe) || !kongNegativeFlag.MatchString(pe.Unwrap().Error()) {
		return ctx, err
	}
	first := slices.IndexFunc(args, negativeWord)
	if first < 0 {
		return ctx, err
	}
	moved, ok := negativesAfterDash(args, first)
	if !ok {
		return ctx, &negativeArgError{pe, args[first]}
	}
	return k.Parse(moved)
}

// kongNegativeFlag is kong's word for a negative number it read as short
// flags: no flag starts with a digit or a dot.
var kongNegativeFlag = regexp.MustCompile(`^unknown flag -[0-9.]`)

// joinNegativeValues joins each --flag followed by a negative number into
// --flag=N, the only way kong takes a value that starts with "-".
func joinNegativeValues(args []string) []string {
	joined := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			joined = append(joined, args[i:]...)
			break
		}
		if strings.HasPrefix(a, "--") && !strings.Contains(a, "=") && i+1 < len(args) && negativeNumber(args[i+1]) {
			a += "=" + args[i+1]
			i++
		}
		joined = append(joined, a)
	}
	return joined
}

// negativesAfterDash moves the arguments from the first negative number on
// (args[first])
// behind a "--", after which kong reads every word as an argument, and the
// flags among them before it: `campaigns rate c1 -5 --json` becomes
// `campaigns rate c1 --json -- -5`, the spelling kong takes. The arguments
// keep their order. It declines (false) when a word after the first
// negative number may be a flag's value rather than an argument (`X -5
// --flag word`): moved, it would read as the wrong one; and when the line
// has its own "--".
func negativesAfterDash(args []string, first int) ([]string, bool) {
	if slices.Contains(args, "--") {
		return nil, false
	}
	var flags, positional []string
	for i := first; i < len(args); i++ {
		a := args[i]
		switch {
		case negativeWord(a):
			positional = append(positional, a)
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
		case strings.HasPrefix(args[i-1], "-") && !negativeWord(args[i-1]) && !strings.Contains(args[i-1], "="):
			return nil, false
		default:
			positional = append(positional, a)
		}
	}
	return slices.Concat(args[:first], flags, []string{"--"}, positional), true
}

// negativeWord is whether s is one negative number ("-5", "-0.5"), as
// kong reads no flag: none starts with a digit or a dot.
func negativeWord(s string) bool {
	return len(s) > 1 && s[0] == '-' && (s[1] >= '0' && s[1] <= '9' || s[1] == '.')
}

// negativeArgError is a negative number kong read as a flag where
// negativesAfterDash could not tell it an argument: it says how to give
// one, where kong said `unknown flag -5, did you mean "-h"?` (of "-50"
// too: kong names its first letter).
type negativeArgError struct {
	*kong.ParseError
	word string
}

func (e *negativeArgError) Error() string {
	return e.word + " reads as a flag: give a negative number after --, with every flag before it"
}

func (e *negativeArgError) Unwrap() error { return e.ParseError }

// negativeNumber is whether s reads as a negative number or duration
// ("-5", "-1s", "-0.5"), or as a list holding one ("3,-5": kong splits a
// list's value and read its "-5" as short flags too): no flag starts with
// a digit.
func negativeNumber(s string) bool {
	return negativeWord(s) || !strings.HasPrefix(s, "-") && slices.ContainsFunc(strings.Split(s, ","), negativeWord)
}

// given is whether the command line gave the positional argument name: kong
// says a missing one only after the validators have run, and a validator
// that refused it first said `ID "": not an id` for "ID: is required".
func given(kctx *kong.Context, name string) bool {
	return slices.ContainsFunc(kctx.Path, func(p *kong.Path) bool { return p.Positional != nil && p.Positional.Name == name })
}

// usageError is a command line kong refused, in one line that says where
// the help is (no usage dump: the mistake would scroll out of sight).
func usageError(err error) string {
	cmd := "pushpipe"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil && pe.Context.Selected() != nil {
		cmd = strings.Join(strings.Fields(pe.Context.Selected().FullPath()), " ")
	}
	refusedArg := kongArgPrefix.MatchString(err.Error())
	msg := argNames(err.Error())
	for _, r := range kongWords {
		msg = r.re.ReplaceAllString(msg, r.with)
	}
	sub := strings.TrimPrefix(cmd, "pushpipe ")
	for _, r := range argWords {
		if r.cmd == sub {
			msg = r.re.ReplaceAllString(msg, r.with)
		}
	}
	if sub == "campaigns rate" && pe != nil {
		if swapped, ok := rateBeforeID(pe); ok {
			msg = swapped
		}
	}
	if refusedArg && sub != cmd {
		// An argument's value, named by its command as the commands'
		// own checks name theirs ("campaigns rate: the rate N: ...").
		msg = sub + ": " + msg
	}
	if m := kongUnexpected.FindStringSubmatch(msg); m != nil {
		if other, ok := otherNames[sub+" "+m[1]]; ok {
			msg += ": did you mean pushpipe " + other + "?"
		}
	}
	return "pushpipe: " + strings.ReplaceAll(msg, "\n", "; ") + " (see " + cmd + " --help)"
}

// kongUnexpected is kong's word for an argument no command takes.
var kongUnexpected = regexp.MustCompile(`^unexpected argument (\S+)$`)

// otherNames are the commands a user may reach for by another tool's name:
// `campaigns throttle ID N` said only "unexpected argument throttle". A
// hint rather than a kong alias, which kong writes into every message of
// the command ("campaigns rate (throttle): ...").
var otherNames = map[string]string{
	"campaigns throttle": "campaigns rate",
	"campaigns stop":     "campaigns cancel",
	"pushpipe version":   "--version", // kubectl's and docker's word; at the top, sub is the command itself
}

// argWords rewrite, for one command, kong's type error of its positional
// argument in the words of the command's own check, range included: "N:
// must be a whole number" of `campaigns rate ID abc` did not say which.
var argWords = []struct {
	cmd  string
	re   *regexp.Regexp
	with string
}{
	{"campaigns rate", regexp.MustCompile(`^N: must be a whole number, got`), "the rate N: " + rateRange() + ", got"},
}

// argNames says kong's positional placeholders as every other message and
// the README do: "<id>: must be a whole number" and `expected "<id>"` beside
// the commands' own "ID: must be a positive integer". Only kong's own
// positions are rewritten (the start of the message, and what it says is
// missing): a value the user typed, "<b>" say, is quoted as typed.
func argNames(msg string) string {
	upper := func(m string) string {
		return strings.ToUpper(strings.Trim(strings.TrimSuffix(strings.Trim(m, "[]"), " ..."), "<>"))
	}
	if m := kongMissingArgs.FindStringSubmatch(msg); m != nil {
		var names []string
		for _, a := range kongArg.FindAllString(m[1]+m[2], -1) {
			names = append(names, upper(a))
		}
		if len(names) > 1 {
			return strings.Join(names, ", ") + ": are required"
		}
		return strings.Join(names, ", ") + ": is required"
	}
	if m := kongArgPrefix.FindStringSubmatchIndex(msg); m != nil {
		return upper(msg[m[2]:m[3]]) + msg[m[3]:]
	}
	return msg
}

var (
	// kongArg is one positional placeholder: <id>, or [<id> ...].
	kongArg = regexp.MustCompile(`\[?<[a-z][a-z0-9_-]*>(?: \.\.\.)?\]?`)
	// kongArgPrefix is an argument's value refused: "<id>: expected ...".
	kongArgPrefix = regexp.MustCompile(`^(` + kongArg.String() + `):`)
	// kongMissingArgs is kong's two ways of saying arguments are missing:
	// `expected "<id> <n>"` names every one (campaigns rate without
	// arguments said that, raw, where its one missing said "N: is
	// required").
	kongMissingArgs = regexp.MustCompile(`^(?:expected "((?:` + kongArg.String() + ` ?)+)"|missing positional arguments ((?:` + kongArg.String() + ` ?)+))$`)
)

// kongWords rewrite kong's type errors in the words of the flags' own
// checks: "expected a valid 64 bit int" is how Go, not a user, names a
// number, and "time: missing unit in duration" left the unit to guess.
var kongWords = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`expected a valid \d+ bit int but got`), "must be a whole number, got"},
	{regexp.MustCompile(`expected a valid \d+ bit uint but got`), "must be a whole number, 0 or more, got"},
	{regexp.MustCompile(`expected duration but got ("[^"]*")(: time: .*)?$`), "must be a duration such as 30s, 15m or 24h, got $1"},
}

// exitUsage is the exit status of a command line refused before anything
// ran, `pushpipe` alone and `pushpipe dlq` among them.
//
// Not 0, as kubectl and cobra's tools answer a bare command: nothing was
// done, and a script whose `pushpipe "$cmd"` lost its command must not
// read as done. git (1) and go (2) fail it too; 2 is what this CLI says
// of every command line it refuses, so a script has one status to test.
const exitUsage = 2

// refused says what main says of a command line kong refused, and
// returns the exit status (exitUsage). A command left out (`pushpipe`
// alone, `pushpipe campaigns`) prints that command's help, grouped as
// --help prints it, to the parser's stdout (pipeable into less): one line
// of `expected one of "dev", "send", "status", ...` was all a newcomer
// saw, cut at five. Any other mistake, `pushpipe nosuchcmd` included, is
// usageError's one line on stderr.
func refused(err error, stderr io.Writer) int {
	if kctx := commandLeftOut(err); kctx != nil {
		if kctx.PrintUsage(false) == nil {
			return exitUsage
		}
	}
	fmt.Fprintln(stderr, usageError(err))
	return exitUsage
}

// commandLeftOut is the parse of err when it refused a command line only
// for naming no subcommand of a command that has some: kong's "expected"
// at a node with subcommands (a missing argument is said at a node
// without).
func commandLeftOut(err error) *kong.Context {
	var pe *kong.ParseError
	if !errors.As(err, &pe) || pe.Context == nil || !strings.HasPrefix(pe.Unwrap().Error(), "expected ") {
		return nil
	}
	node := pe.Context.Selected()
	if node == nil {
		node = pe.Context.Model.Node
	}
	if !slices.ContainsFunc(node.Children, func(n *kong.Node) bool { return n.Type == kong.CommandNode && !n.Hidden }) {
		return nil
	}
	return pe.Context
}
