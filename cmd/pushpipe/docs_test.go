package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// The documents a newcomer follows on day one. Their ```sh blocks run in
// bench/readme; what they quote elsewhere (a ```console block, a flag in a
// sentence, the deploy guide's commands) runs nowhere, and rotted there
// unseen when a flag or command was renamed.
var quotingDocs = []string{"README.md", "docs/API.md", "deploy/README.md", "deploy/CAPACITY.md"}

// docSnippet is a piece of a document that may quote a command line: a
// logical line of a fenced block (its `\` continuations joined) or an
// inline code span of the prose.
type docSnippet struct {
	where  string // file:line
	text   string
	inline bool // a code span of the prose
}

var inlineCode = regexp.MustCompile("`[^`]+`") // across the lines of a paragraph

// docSnippets reads path's fenced lines and inline code spans (which may
// wrap: a paragraph is read whole).
func docSnippets(t *testing.T, path string) []docSnippet {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docSnippet
	var para strings.Builder
	paraAt := 0
	endPara := func() {
		text := para.String()
		for _, m := range inlineCode.FindAllStringIndex(text, -1) {
			line := paraAt + strings.Count(text[:m[0]], "\n")
			span := strings.ReplaceAll(text[m[0]+1:m[1]-1], "\n", " ")
			out = append(out, docSnippet{where: path + ":" + strconv.Itoa(line), text: span, inline: true})
		}
		para.Reset()
	}
	fenced, shell := false, false
	var cont strings.Builder
	contAt := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if lang, ok := strings.CutPrefix(strings.TrimSpace(line), "```"); ok {
			endPara()
			fenced = !fenced
			// Go, JSON, TOML, YAML blocks quote no command lines (a Go
			// comment's "pushpipe webhook POST" is none).
			shell = fenced && slices.Contains([]string{"", "sh", "bash", "console", "text"}, lang)
			continue
		}
		if !fenced {
			if strings.TrimSpace(line) == "" {
				endPara()
				continue
			}
			if para.Len() == 0 {
				paraAt = n
			}
			para.WriteString(line + "\n")
			continue
		}
		if !shell {
			continue
		}
		if cont.Len() == 0 {
			contAt = n
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " "), `\`); ok {
			cont.WriteString(s + " ")
			continue
		}
		cont.WriteString(line)
		out = append(out, docSnippet{where: path + ":" + strconv.Itoa(contAt), text: uncommented(cont.String())})
		cont.Reset()
	}
	endPara()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// uncommented is a fenced line without its shell comment (a # starting a
// word, outside quotes).
func uncommented(line string) string {
	var quote rune
	prev := ' '
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return line[:i]
		}
		prev = r
	}
	return line
}

// quotedCommand finds `pushpipe WORD ...` (or ./pushpipe, or /pushpipe in
// the image) in text: the
// words of each command line it quotes, up to a shell separator or a
// comment. Words stay as written (`[--batch`, `ID`, `--from=0`).
var quotedCommand = regexp.MustCompile(`(?:^|[\s(])((?:\.?/)?pushpipe)\s+([a-z<].*)`)

// pushpipe as a name, not a command: kubectl's namespace (`kubectl -n
// pushpipe get pods`), Redis's ACL user (`user pushpipe on ...`).
var namespaceFlag = regexp.MustCompile(`(?:-n|--namespace|user)\s+$`)

func quotedCommands(text string) [][]string {
	var out [][]string
	for rest := text; ; {
		m := quotedCommand.FindStringSubmatchIndex(rest)
		if m == nil {
			return out
		}
		if namespaceFlag.MatchString(rest[:m[2]]) {
			rest = rest[m[4]:] // a command may follow: kubectl exec ... -- /pushpipe
			continue
		}
		words, tail := shellWords(rest[m[4]:])
		out = append(out, words)
		rest = tail
	}
}

// shellWords splits s as a shell would into words, quotes kept out, up to
// the first ; or ) outside quotes, or | & # or > starting a word (`a|b`
// is an alternative, not a pipe); tail is what follows.
func shellWords(s string) (words []string, tail string) {
	var w strings.Builder
	inWord := false
	var quote rune
	flush := func() {
		if inWord {
			words = append(words, w.String())
		}
		w.Reset()
		inWord = false
	}
	for i, r := range s {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			flush()
		case r == '#' && !inWord:
			flush()
			return words, "" // a comment, to the end of the line
		case strings.ContainsRune(";)", r) || (strings.ContainsRune("|&>", r) && !inWord):
			flush()
			return words, s[i+1:]
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	flush()
	return words, ""
}

// checkCommand says what of words the CLI does not know: a first word that
// is no command, a word under a command group (campaigns, dlq) that is none
// of its commands, or a flag that the command it reached does not take.
// Words after the commands are arguments and placeholders, not checked;
// a quote (deliver's) swallows the rest of a span: checked less, not wrongly.
func checkCommand(root *kong.Node, words []string) []string {
	if len(words) == 0 || strings.HasPrefix(words[0], "<") {
		return nil // `pushpipe <command> --help`: a placeholder
	}
	node, depth := root, 0
	var problems []string
	for _, w := range words {
		if strings.HasPrefix(w, "-") {
			if !hasFlag(node, w) {
				problems = append(problems, "no flag "+flagName(w)+" on `pushpipe "+node.Path()+"`")
			}
			continue
		}
		if child := childCommand(node, w); child != nil {
			node, depth = child, depth+1
			continue
		}
		if depth == 0 || hasCommands(node) {
			return append(problems, "no command "+strings.TrimSpace(node.Path()+" "+w))
		}
	}
	return problems
}

// hasCommands: n's words are commands (campaigns list), not arguments.
func hasCommands(n *kong.Node) bool {
	return slices.ContainsFunc(n.Children, func(c *kong.Node) bool { return c.Type == kong.CommandNode })
}

func childCommand(n *kong.Node, name string) *kong.Node {
	for _, c := range n.Children {
		if c.Type == kong.CommandNode && (c.Name == name || slices.Contains(c.Aliases, name)) {
			return c
		}
	}
	for _, c := range n.Children {
		if c.Type == kong.ArgumentNode && !strings.HasPrefix(name, "-") {
			return c // a command with an argument (status ID) and flags after it
		}
	}
	return nil
}

// flagName is the flag a word names: `[--batch` and `--from=0` are --batch
// and --from, `-h` is -h.
func flagName(w string) string {
	w = strings.TrimLeft(w, "[")
	w, _, _ = strings.Cut(w, "=")
	return strings.TrimRight(w, "].,")
}

// hasFlag: n or a command above it takes the flag w names.
func hasFlag(n *kong.Node, w string) bool {
	name := flagName(w)
	if name == "--help" || name == "-h" || name == "--version" {
		return true
	}
	for ; n != nil; n = n.Parent {
		for _, f := range n.Flags {
			if name == "--"+f.Name || (f.Short != 0 && name == "-"+string(f.Short)) ||
				name == negation(f) || slices.Contains(f.Aliases, strings.TrimPrefix(name, "--")) {
				return true
			}
		}
	}
	return false
}

// negation is the flag that turns f off (kong's negatable:""), or "".
func negation(f *kong.Flag) string {
	switch f.Tag.Negatable {
	case "":
		return ""
	case "_":
		return "--no-" + f.Name
	default:
		return "--" + f.Tag.Negatable
	}
}

// TestDocsQuoteTheCLI: every `pushpipe ...` command line the day-one
// documents quote, in any block or sentence, names a command the CLI has
// and flags that command takes. (That it works is bench/readme's for the
// ```sh blocks; this is about names, which are what rots.)
func TestDocsQuoteTheCLI(t *testing.T) {
	t.Parallel()
	root := takeParser(t).k.Model.Node
	seen := 0
	for _, doc := range quotingDocs {
		for _, s := range docSnippets(t, doc) {
			for _, words := range quotedCommands(s.text) {
				seen++
				for _, p := range checkCommand(root, words) {
					t.Errorf("%s: `pushpipe %s`: %s", s.where, strings.Join(words, " "), p)
				}
			}
		}
	}
	t.Logf("%d quoted pushpipe command lines checked", seen)
	// The documents quote some eighty; far fewer means the reading of
	// them broke, not that they stopped quoting commands.
	if seen < 50 {
		t.Errorf("read %d quoted pushpipe commands in %v, want over 50: is docSnippets still reading them?", seen, quotingDocs)
	}
}

// TestDocsNameFlagsTheCLITakes: a flag the day-one documents name on its own
// in a sentence (`--claim-idle`, `--in-flight 512`), its command said in
// words, is a flag of some pushpipe command.
func TestDocsNameFlagsTheCLITakes(t *testing.T) {
	t.Parallel()
	flags := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			flags["--"+f.Name] = true
			if neg := negation(f); neg != "" {
				flags[neg] = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(takeParser(t).k.Model.Node)
	seen := 0
	for _, doc := range quotingDocs {
		for _, s := range docSnippets(t, doc) {
			if !s.inline || !strings.HasPrefix(s.text, "--") {
				continue
			}
			seen++
			if name := flagName(strings.Fields(s.text)[0]); !flags[name] {
				t.Errorf("%s: `%s`: no pushpipe command has a flag %s", s.where, s.text, name)
			}
		}
	}
	if seen < 50 {
		t.Errorf("read %d flags named in %v, want over 50: is docSnippets still reading them?", seen, quotingDocs)
	}
}

// The reading of a document, on lines of the kinds it quotes.
func TestQuotedCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give string
		want [][]string
	}{
		{give: `id=$(./pushpipe send --app demo --title "Goal!" --wait)  # a bar`, want: [][]string{{"send", "--app", "demo", "--title", "Goal!", "--wait"}}},
		{give: `pushpipe webhook --url U [--batch 500] [--from oldest|now]`, want: [][]string{{"webhook", "--url", "U", "[--batch", "500]", "[--from", "oldest|now]"}}},
		{give: `./pushpipe users show 2 ; pushpipe status | head`, want: [][]string{{"users", "show", "2"}, {"status"}}},
		{give: `pushpipe_deliver_sends_total{provider}`, want: nil},
		{give: `kubectl -n pushpipe rollout status deployment/pushpipe-api`, want: nil},
		{give: `kubectl -n pushpipe exec deploy/x -- /pushpipe results retire a`, want: [][]string{{"results", "retire", "a"}}},
		{give: `pushpipe dlq list # what pushpipe holds`, want: [][]string{{"dlq", "list"}}},
		{give: `X=1 pushpipe api --listen :8080 --data '{"a":1}'`, want: [][]string{{"api", "--listen", ":8080", "--data", `{"a":1}`}}},
	}
	for _, tt := range tests {
		if got := quotedCommands(tt.give); !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("quotedCommands(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

var envName = regexp.MustCompile(`\bPUSHPIPE_[A-Z0-9_]*[A-Z0-9]\b`)

// TestDocsNameEnvironmentTheCodeReads: a PUSHPIPE_ variable the day-one
// documents name is a flag's (kong's env:) or one the code or the
// manifests read by name (PUSHPIPE_ADMIN_TOKEN, a drill's knob, a Secret's
// key). `PUSHPIPE_REDIS_TLS_*_FILE` is a pattern, not a name.
func TestDocsNameEnvironmentTheCodeReads(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			for _, e := range f.Envs {
				known[e] = true
			}
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(takeParser(t).k.Model.Node)
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".pushpipe" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		// Tests read names too, but only the drills' are knobs an operator
		// sets (PUSHPIPE_UPGRADE_FROM, make upgrade-drill).
		test := strings.HasSuffix(path, "_test.go") && filepath.Base(filepath.Dir(path)) != "drills"
		if ext := filepath.Ext(path); d.IsDir() || test || (ext != ".go" && ext != ".yaml" && ext != ".sh" && d.Name() != "Makefile") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, name := range envName.FindAllString(string(b), -1) {
			known[name] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, doc := range quotingDocs {
		for _, s := range docSnippets(t, doc) {
			for _, m := range envName.FindAllStringIndex(s.text, -1) {
				if m[1] < len(s.text) && s.text[m[1]] == '*' {
					continue // a pattern
				}
				seen++
				if name := s.text[m[0]:m[1]]; !known[name] {
					t.Errorf("%s: %s: no flag reads it, and no code or manifest names it", s.where, name)
				}
			}
		}
	}
	if seen < 20 {
		t.Errorf("read %d PUSHPIPE_ variables in %v, want over 20: is docSnippets still reading them?", seen, quotingDocs)
	}
}

// envRead is a read of the environment by name in the commands' code:
// os.Getenv or os.LookupEnv of a literal, or of a constant holding one.
var (
	envRead  = regexp.MustCompile(`os\.(?:Getenv|LookupEnv)\(("PUSHPIPE_[A-Z0-9_]+"|\w+)\)`)
	envConst = regexp.MustCompile(`(\w+)\s*=\s*"(PUSHPIPE_[A-Z0-9_]+)"`)
)

// TestDocsNameEveryVariableTheCommandsRead: the converse of
// TestDocsNameEnvironmentTheCodeReads for the variables no flag reads
// (kong's env: shows in --help): each one the commands read by name is in
// a day-one document, and each the API reads is in `pushpipe api --help`,
// which lists the API's environment. PUSHPIPE_DEV, which pushpipe dev
// sets to change what the API's 422 says, was in neither.
func TestDocsNameEveryVariableTheCommandsRead(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{}
	reads := map[string][]string{} // file → names
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range envConst.FindAllStringSubmatch(string(b), -1) {
			consts[m[1]] = m[2]
		}
		for _, m := range envRead.FindAllStringSubmatch(string(b), -1) {
			reads[f] = append(reads[f], m[1])
		}
	}
	documented := map[string]bool{}
	for _, doc := range quotingDocs {
		for _, s := range docSnippets(t, doc) {
			for _, name := range envName.FindAllString(s.text, -1) {
				documented[name] = true
			}
		}
	}
	help := (&APICmd{}).Help()
	seen := 0
	for f, names := range reads {
		for _, n := range names {
			name, err := strconv.Unquote(n)
			if err != nil {
				if name = consts[n]; name == "" {
					continue // not a PUSHPIPE_ variable
				}
			}
			seen++
			if !documented[name] {
				t.Errorf("%s reads %s, which no day-one document names (%v): say what it does beside the settings of README's Configuration", f, name, quotingDocs)
			}
			if f == "api.go" && !strings.Contains(help, name) {
				t.Errorf("api.go reads %s, which `pushpipe api --help` does not list:\n%s", name, help)
			}
		}
	}
	if seen < 5 {
		t.Errorf("read %d PUSHPIPE_ variables in the commands' code, want 5 or more: is envRead still finding them?", seen)
	}
}
