package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/pushpipe/pushpipe/pipeline"
	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// help renders `pushpipe ARGS --help` as main does.
func help(t *testing.T, args ...string) string {
	t.Helper()
	return helper(t)(args...)
}

// helper returns help on one parser, for a test that reads many helps:
// kong.New took 0.3 s under -race, 9 s of TestHelpPlaceholdersReadable
// when each of its helps had a parser of its own. Parse resets every flag
// first, so one help's command line does not leak into the next.
func helper(t *testing.T) func(args ...string) string {
	t.Helper()
	var out bytes.Buffer
	k, err := kong.New(&CLI{}, append(options(), kong.Writers(&out, &out), kong.Exit(func(int) {}))...)
	if err != nil {
		t.Fatal(err)
	}
	return func(args ...string) string {
		out.Reset()
		k.Parse(append(slices.Clone(args), "--help"))
		return out.String()
	}
}

// Each subcommand's help offers the global flags it reads, and no others;
// --version only at the top.
func TestHelpShowsTheGlobalsUsed(t *testing.T) {
	redisFlags := []string{"--redis-addr", "--redis-username", "--redis-password-file", "--redis-tls-ca-file", "--redis-tls-cert-file", "--redis-tls-key-file"}
	tests := []struct {
		give      []string
		want, not []string
	}{
		{[]string{"fakeprovider"}, []string{"--listen"}, []string{"--redis-addr", "--database-url", "--version"}},
		{[]string{"migrate"}, []string{"--database-url", "--log-level"}, []string{"--redis-addr", "--partitions", "--prefix"}},
		{[]string{"dlq", "list"}, append(redisFlags, "--prefix"), []string{"--database-url"}},
		{[]string{"dlq", "retry"}, redisFlags, []string{"--database-url"}},
		{[]string{"bench"}, redisFlags, []string{"--version"}},
		{[]string{"dev"}, append(redisFlags, "--database-url", "--partitions"), []string{"--prefix", "--log-level", "--version"}},
		{[]string{"status"}, redisFlags, nil},
		{[]string{"status"}, []string{"--redis-addr", "--database-url", "--partitions", "--prefix"}, []string{"--version"}},
		{[]string{"split"}, []string{"--redis-addr", "--database-url", "--claim-idle"}, nil},
		{[]string{"deliver"}, []string{"(default\n", "https://api.push.apple.com", "https://api.sandbox.push.apple.com", "https://fcm.googleapis.com/v1"}, nil},
		// --apps said "the apps campaigns may name (beside
		// PUSHPIPE_APP_KEYS)": with it, those are the only apps of devices
		// and messages too, PUSHPIPE_APP_KEYS's apps not among them.
		{[]string{"api"}, []string{"PUSHPIPE_ADMIN_TOKEN", "PUSHPIPE_APP_KEYS", "PUSHPIPE_REDIS_ADDR", "PUSHPIPE_DATABASE_URL", "/v1/openapi.json",
			"the only apps this API"}, []string{"beside PUSHPIPE_APP_KEYS"}},
		{[]string{"all"}, []string{"PUSHPIPE_ADMIN_TOKEN", "PUSHPIPE_APP_KEYS", "/v1/openapi.json"}, nil},
		{nil, []string{"--version", "--redis-addr"}, nil},
	}
	help := helper(t)
	for _, tt := range tests {
		out := help(tt.give...)
		for _, w := range tt.want {
			if w == "(default\n" {
				w = "(default" // kong wraps the line after it
			}
			if !strings.Contains(out, w) {
				t.Errorf("pushpipe %s --help lacks %q:\n%s", strings.Join(tt.give, " "), w, out)
			}
		}
		for _, n := range tt.not {
			if strings.Contains(out, n) {
				t.Errorf("pushpipe %s --help shows %s, which it does not use:\n%s", strings.Join(tt.give, " "), n, out)
			}
		}
	}
	// Hiding is per help: the flags stay accepted everywhere.
	if cli := parse(t, "fakeprovider", "--redis-addr", "10.0.0.1:6379"); cli.RedisAddr != "10.0.0.1:6379" {
		t.Fatalf("--redis-addr on fakeprovider: %q", cli.RedisAddr)
	}
}

// No help shows kong's type-named placeholders: "--max-deliveries=INT-64"
// and "--error-rate=FLOAT-64" name a Go type, not what to write. A flag
// naming a file shows FILE, as --apps=FILE and --secret-file=FILE do: the
// global --redis-password-file and --redis-tls-*-file showed =STRING in
// every subcommand's help, and --database-url=STRING and
// --log-level=STRING said no more.
func TestHelpPlaceholdersReadable(t *testing.T) {
	fileFlag := regexp.MustCompile(`--[a-z0-9-]+-file=(\S+)`)
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	help := helper(t)
	var walk func(n *kong.Node, path []string)
	walk = func(n *kong.Node, path []string) {
		out := help(path...)
		for _, bad := range []string{"INT-", "FLOAT-", "UINT-"} {
			if strings.Contains(out, bad) {
				t.Errorf("pushpipe %s --help shows a type for a placeholder (%s...):\n%s", strings.Join(path, " "), bad, out)
			}
		}
		for _, m := range fileFlag.FindAllStringSubmatch(out, -1) {
			if m[1] != "FILE" {
				t.Errorf("pushpipe %s --help shows %s, want =FILE", strings.Join(path, " "), m[0])
			}
		}
		for _, bad := range []string{"--database-url=STRING", "--log-level=STRING", "--redis-username=STRING"} {
			if strings.Contains(out, bad) {
				t.Errorf("pushpipe %s --help shows %s, which says nothing of what to write", strings.Join(path, " "), bad)
			}
		}
		for _, c := range n.Children {
			walk(c, append(slices.Clone(path), c.Name))
		}
	}
	walk(k.Model.Node, nil)
}

// A refused command line is one line, with the one prefix, naming the help
// to read; settings the code would quietly replace are refused.
func TestUsageErrors(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secrets, []byte("s1-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hook := []string{"webhook", "--url", "https://h.example/x", "--secret-file", secrets}
	allHook := []string{"all", "--webhook-url", "https://h.example/x", "--webhook-secret-file", secrets}
	tests := []struct {
		give []string
		want string
	}{
		{[]string{"sendd"}, `pushpipe: unexpected argument sendd, did you mean "send"? (see pushpipe --help)`},
		{[]string{"send", "--app", "a"}, "pushpipe: missing flags: --channel=CHANNEL or --user=USER,... or --token=PLATFORM:TOKEN (see pushpipe send --help)"},
		{[]string{"dlq", "list", "--bogus"}, "pushpipe: unknown flag --bogus (see pushpipe dlq list --help)"},
		{[]string{"--log-level", "verbose", "status"}, `"verbose" is not debug, info, warn or error`},
		{[]string{"--partitions", "0", "status"}, "--partitions / PUSHPIPE_PARTITIONS must be at least 1"},
		{[]string{"dlq", "list", "--partitions=-4"}, "must be at least 1 (the deployment's count; leave it out for 16), got -4"},
		{[]string{"--prefix", "", "status"}, "--prefix / PUSHPIPE_PREFIX must not be empty"},
		// A brace moved the keys' hash tags: one slot for every key, or
		// CROSSSLOT for a partition's keys.
		{[]string{"--prefix", "pp{x}", "status"}, `--prefix / PUSHPIPE_PREFIX must not contain { or }: the keys' own hash tags (a partition's, a campaign's) decide their cluster slot; got "pp{x}"`},
		{[]string{"split", "--claim-idle", "0s"}, "--claim-idle must be 100ms or more, such as 30s (a batch in progress is kept claimed every third of it), got 0s"},
		// A third of it is how often a batch is kept claimed: 1ns panicked
		// the runner at its first batch (a ticker of 0).
		{[]string{"split", "--claim-idle", "1ns"}, "--claim-idle must be 100ms or more, such as 30s (a batch in progress is kept claimed every third of it), got 1ns"},
		{[]string{"all", "--claim-idle", "1ms"}, "--claim-idle must be 100ms or more"},
		{[]string{"bench", "--chaos-every", "1ns", "--claim-idle", "1ns"}, "--chaos-every: must be 100ms or more, such as 3s (a stage process is killed and restarted each time), got 1ns; " +
			"--claim-idle: must be 100ms or more, such as 10s (or 0 for the default), got 1ns"},
		{[]string{"ingest", "--concurrency=-1", "--batch=-5"}, "--concurrency must be at least 1 (or left out for the stage's own), got -1; " +
			"--batch must be at least 1 (or left out for the stage's own), got -5"},
		{[]string{"ingest", "--shutdown-timeout=-1s"}, "--shutdown-timeout must be a positive duration"},
		{[]string{"ingest", "--keep-tombstones", "1h"}, "--keep-tombstones 1h0m0s: at least 24h0m0s (registrations held up longer are dropped), or 0"},
		{[]string{"all", "--ingest-keep-tombstones", "23h"}, "--ingest-keep-tombstones 23h0m0s: at least 24h0m0s"},
		{[]string{"api", "--listen", ":0", "--keep-messages", "1h"}, "--keep-messages 1h0m0s: at least 24h0m0s (Redis keeps a message's counts that long"},
		{[]string{"all", "--keep-messages", "23h"}, "--keep-messages 23h0m0s: at least 24h0m0s"},
		{[]string{"status", "--interval", "0s"}, "--interval must be 100ms or more, such as 1s (a refresh asks Redis about every stream), got 0s"},
		// 1ns refreshed without a pause.
		{[]string{"status", "--watch", "--interval", "1ns"}, "--interval must be 100ms or more, such as 1s (a refresh asks Redis about every stream), got 1ns"},
		{[]string{"status", "--watch", "--interval", "99ms"}, "--interval must be 100ms or more"},
		// 100000000 grew status past 17 GB and recorded that count as the
		// layout of a fresh Redis.
		{[]string{"--partitions", "100000000", "status"}, "--partitions / PUSHPIPE_PARTITIONS must be at most 1024: every stage process reads each partition " +
			"with a Redis connection of its own, and 1024 are 4 a master on 256 masters; got 100000000"},
		{[]string{"dlq", "list", "--partitions", "1025"}, "must be at most 1024"},
		// Refused once it ran, naming no flag ("fakeprovider: error rate
		// must be within [0,1]"), exit 1.
		{[]string{"fakeprovider", "--error-rate", "2"}, "--error-rate must be a share from 0 to 1, such as 0.05, got 2"},
		{[]string{"fakeprovider", "--unregistered-rate=-0.1", "--bad-token-rate", "1.5"}, "--unregistered-rate must be a share from 0 to 1, such as 0.05, got -0.1; " +
			"--bad-token-rate must be a share from 0 to 1, such as 0.05, got 1.5"},
		{[]string{"fakeprovider", "--unregistered-rate", "0.7", "--bad-token-rate", "0.5"}, "--unregistered-rate and --bad-token-rate are shares of the same tokens: together at most 1, got 0.7 + 0.5"},
		{[]string{"fakeprovider", "--tps=-5", "--latency=-1s", "--outage=-2s"}, "--tps must be 0 (no cap) or more requests per second, got -5; " +
			"--latency must be 0 (none) or a positive duration such as 50ms, got -1s; --outage must be 0 (none) or a positive duration such as 50ms, got -2s"},
		{[]string{"fakeprovider", "--listen", "8443"}, `--listen must be host:port such as 127.0.0.1:8443, got "8443"`},
		// A pair without its slash matched no provider token: 403 to every send.
		{[]string{"fakeprovider", "--apns-keys", "TEAM1/KEY1,TEAM2"}, `--apns-keys: each must be TEAM/KEY (a team id and a key id), got "TEAM2"`},
		// A negative one removed nothing, without a word.
		{[]string{"status", "--remove-idle=-1h"}, "--remove-idle must be a positive duration such as 1h (consumers idle that long, holding nothing, are removed), got -1h0m0s"},
		{[]string{"deliver", "--retry-base", "2m"}, "--retry-max (1m0s) is shorter than --retry-base (2m0s)"},
		// 1ns resent to a failing provider without a pause, up to
		// --max-attempts; 0 was refused already. The floor is the stage's
		// (deliver.MinRetry), which library callers get too.
		{[]string{"deliver", "--retry-base", "1ns", "--retry-max", "1ns"}, "--retry-base must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 1ns; " +
			"--retry-max must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 1ns"},
		{[]string{"deliver", "--retry-base", "9ms"}, "--retry-base must be 10ms or more"},
		{[]string{"deliver", "--retry-max", "1ns"}, "--retry-max must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 1ns"},
		{[]string{"deliver", "--retry-base", "0s"}, "--retry-base must be 10ms or more"},
		{[]string{"all", "--retry-base", "1ns", "--retry-max", "1ms"}, "deliver: --retry-base must be 10ms or more, such as 500ms (each retry round resends to the provider that failed), got 1ns; " +
			"--retry-max must be 10ms or more"},
		// Each of deliver's numbers said of its flag, with its value: "--in-flight
		// and --max-attempts must be at least 1, --tps at least 0" for any one.
		{[]string{"all", "--in-flight", "0"}, "deliver: --in-flight must be at least 1, got 0"},
		{[]string{"deliver", "--tps=-5", "--max-attempts", "0"}, "--max-attempts must be at least 1, got 0; --tps must be 0 (no cap) or more sends per second, got -5"},
		// deliver.Config refused these once the servers answered, naming no
		// flag; a share of 0 was its default.
		{[]string{"deliver", "--express-share", "0", "--express-target=-1s"}, "--express-share must be a share of --tps between 0 and 1 (exclusive), such as 0.2, got 0; " +
			"--express-target must be 0 (never slow bulk) or a positive duration such as 25ms, got -1s"},
		{[]string{"deliver", "--express-in-flight=-1"}, "--express-in-flight must be 0 (a quarter of --in-flight) or more, got -1"},
		// split.New replaced a size below 1 by its default; under all,
		// split's checks did not run at all.
		{[]string{"split", "--range-size", "0", "--max-deliver-backlog=-1"}, "--range-size must be at least 1, got 0; --max-deliver-backlog must be 0 (off) or more entries, got -1"},
		{[]string{"all", "--split-paced-ahead=-1s", "--split-parallel", "0"}, "split: --split-paced-ahead must be 0 (off) or a positive duration such as 1m, got -1s; " +
			"--split-parallel must be at least 1, got 0"},
		// A pool size below 1 was pgx's default (4, or the CPUs), and a
		// negative one was taken off the pool of every stage of the process.
		{[]string{"resolve", "--db-conns", "0"}, "--db-conns must be at least 1 PostgreSQL connection (the pool size, opened at start), got 0"},
		{[]string{"all", "--split-db-conns=-2", "--api-db-conns", "0"}, "--api-db-conns must be at least 1 PostgreSQL connection (the pool size, opened at start), got 0; " +
			"split: --split-db-conns must be at least 1 PostgreSQL connection (the pool size, opened at start), got -2"},
		{[]string{"api", "--listen", ":0", "--db-conns", "0"}, "--db-conns must be at least 1"},
		// --max-conns 0 served no connection at all; a body cap of 0 was the
		// package's default; a proxy list was refused after the flags (exit 1).
		{[]string{"api", "--listen", ":0", "--max-conns", "0", "--max-body-bytes", "0", "--device-write-rate=-1"},
			"--max-conns must be at least 1, got 0; --max-body-bytes must be at least 1, got 0; --device-write-rate must be 0 (no limit) or more writes per second, got -1"},
		{[]string{"all", "--idle-timeout", "0s", "--auth-fail-burst", "0"}, "--idle-timeout must be a positive duration such as 30s, got 0s; " +
			"--auth-fail-burst must be at least 1 wrong token (--auth-fail-rate 0 turns the throttle off), got 0"},
		{[]string{"api", "--listen", ":0", "--trusted-proxies", "lb.internal"}, `--trusted-proxies: "lb.internal" is neither a CIDR prefix`},
		{[]string{"send", "--app", "a", "--channel", "x", "--title", "t", "--db-conns", "0"}, "--db-conns must be at least 1"},
		{[]string{"deliver", "--fcm-project", "p"}, "give --apns-topic: the provider flags serve the one app whose id it is"},
		// --apns-topic beside --apps was dropped without a word.
		{[]string{"deliver", "--apps", "apps.toml", "--apns-topic", "com.example.news"},
			"--apns-topic given with --apps: the apps file replaces the single-app provider flags"},
		{[]string{"all", "--apps", "apps.toml", "--apns-key", "k.p8", "--fcm-project", "p"}, "--apns-key, --fcm-project given with --apps"},
		{[]string{"send", "--app", "a", "--user", "1", "--send-at", "2030-01-02T15:04:05Z"}, "--send-at: a direct message (--user, --token) is sent at once"},
		{[]string{"send", "--app", "a", "--channel", "x", "--send-at", "tomorrow"}, `--send-at: must be an RFC 3339 time such as "2026-01-02T15:04:05Z"`},
		{[]string{"send", "--app", "a", "--channel", "x", "--send-at", "2030-01-02 15:04"}, `got "2030-01-02 15:04"`},
		{[]string{"send", "--app", "a", "--user", "1,2", "--rate-per-second", "10", "--allow-empty"}, "--rate-per-second, --allow-empty: a direct message"},
		{[]string{"send", "--app", "a", "--user", "1", "--ttl", "9999h"}, "--ttl: must be between 1s and 672h0m0s (28 days), got 9999h0m0s"},
		{[]string{"send", "--app", "a", "--channel", "x", "--ttl", "500ms"}, "--ttl: must be between 1s and 672h0m0s (28 days), got 500ms"},
		{[]string{"send", "--app", "a", "--channel", "x", "--ttl", "0s"}, "--ttl: must be between 1s and 672h0m0s (28 days), got 0s"},
		// A kong enum offered "" among the choices: one of "","normal","high".
		{[]string{"send", "--app", "a", "--channel", "x", "--title", "t", "--priority", "urgent"},
			`pushpipe: send: --priority: must be normal or high, got "urgent" (left out: normal for a campaign, high for a message) (see pushpipe send --help)`},
		{[]string{"send", "--app", "a", "--user", "1", "--data", "order=42"}, `--data: must be a JSON object of custom keys such as '{"order":"42"}', got "order=42"`},
		{[]string{"send", "--app", "a", "--channel", "x", "--data", "[1]"}, `--data: must be a JSON object`},
		{[]string{"send", "--app", "a", "--channel", "x", "--data", "null"}, `--data: must be a JSON object`},
		{[]string{"send", "--app", "a", "--user=-5"}, "--user: user ids are positive, got -5"},
		// --user "$ids" with $ids empty: kong counted the flag as given, and
		// the command went on as a campaign to no channel ("channels: at
		// least one channel is required", exit 1), which says nothing of
		// --user.
		{[]string{"send", "--app", "a", "--user", "", "--title", "t"}, `pushpipe: send: --user: given no value, so nobody to send to (an empty shell variable?); give at least one, e.g. --user 1,2,3`},
		{[]string{"send", "--app", "a", "--user=", "--title", "t", "--wait"}, "--user: given no value"},
		// Every problem of the notification's own flags, not the first
		// the API's parser met.
		{[]string{"send", "--app", "a", "--channel", "x", "--title", "t", "--badge=-1", "--sound", "a/b"},
			`--badge: must be between 0 (clears the badge) and 2147483647, got -1; --sound: must be a sound file name`},
		{[]string{"send", "--app", "a", "--user", "1", "--image", "http://x", "--thread-id", "a\nb", "--localized", "ko=x"},
			`--localized ko: must be a JSON object such as 'ko={"title":"...","body":"..."}', got "x"; --title or --body: give at least one, ` +
				`the notification's text (or --silent for a background push); --image: must be an https:// URL of at most 2048 bytes; ` +
				`--thread-id: must be at most 64 printable bytes`},
		{[]string{"messages", "list", "--limit", "0"}, "--limit: must be a whole number from 1 to 100 (default 20), got 0"},
		{[]string{"users", "show", "0"}, "users show: ID: is required: the user's id, a positive integer"},
		{[]string{"users", "delete", "--", "-3"}, "users delete: ID: must be a positive integer, got -3"},
		// Arguments are named as the commands' own checks name them (ID:),
		// not as kong's placeholders: "<id>: must be a whole number".
		{[]string{"users", "delete", "x"}, `pushpipe: users delete: ID: must be a whole number, got "x" (see pushpipe users delete --help)`},
		{[]string{"users", "show", "abc"}, `pushpipe: users show: ID: must be a whole number, got "abc" (see pushpipe users show --help)`},
		// A positional's type error names its command as a check does, and
		// campaigns rate's N its range: "N: must be a whole number" did not.
		{[]string{"campaigns", "rate", "c1", "abc"}, `pushpipe: campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got "abc" (see pushpipe campaigns rate --help)`},
		// Another tool's word for a command: "unexpected argument throttle" alone.
		{[]string{"campaigns", "throttle", "c1", "5"}, `pushpipe: unexpected argument throttle: did you mean pushpipe campaigns rate? (see pushpipe campaigns --help)`},
		{[]string{"version"}, `pushpipe: unexpected argument version: did you mean pushpipe --version? (see pushpipe --help)`},
		{[]string{"campaigns", "cancel"}, `pushpipe: ID: is required (see pushpipe campaigns cancel --help)`},
		// Both missing: kong's raw `expected "<id> <n>"`.
		{[]string{"campaigns", "rate"}, `pushpipe: ID, N: are required (see pushpipe campaigns rate --help)`},
		{[]string{"campaigns", "rate", "c1"}, `pushpipe: N: is required (see pushpipe campaigns rate --help)`},
		{[]string{"dlq", "show"}, `pushpipe: ID: is required (see pushpipe dlq show --help)`},
		{[]string{"results", "retire"}, `pushpipe: GROUP: is required (see pushpipe results retire --help)`},
		{[]string{"results", "unretire", "a", "b"}, `unexpected argument b`},
		{[]string{"campaigns", "list", "--limit", "1.5"}, `--limit: must be a whole number, got "1.5"`},
		{[]string{"send", "--app", "a", "--channel", "x", "--ttl", "5"}, `--ttl: must be a duration such as 30s, 15m or 24h, got "5" (see`},
		{[]string{"send", "--app", "a", "--user", "3,0"}, "--user: user ids are positive, got 0"},
		{[]string{"replay", "--resplit", "--campaign", "c", "--partition", "1", "--high-water", "5"}, "--resplit takes only --campaign (and --dry-run), not --partition, --high-water"},
		{[]string{"replay", "--resplit", "--campaign", "c", "--into", "deliver", "--json"}, "not --into, --json: it re-runs the whole campaign"},
		{[]string{"replay", "--resplit", "--dry-run"}, "--resplit needs --campaign ID"},
		{[]string{"dlq", "list", "--stream", "result"}, `--stream "result": dead letters come from the stage inputs only, one of ingest, campaigns,`},
		{[]string{"dlq", "drop", "--all", "--stream", "dlq"}, `--stream "dlq": dead letters come from`},
		{[]string{"dlq", "retry", "--all", "--stream", "deliver_express"}, `--stream "deliver_express"`},
		// The webhook's values are refused at parse time, before Redis
		// (which may be down) is tried, and none is quietly replaced.
		{slices.Concat(hook, []string{"--filter", "outcome=failure"}), `--filter: outcome "failure" is not sent, failed or invalid`},
		{slices.Concat(hook, []string{"--batch", "0"}), "--batch must be at least 1 event per POST, got 0"},
		// Under all they are named as all has them: there --batch is
		// every stage's entries per read, and --secret-file no flag.
		{slices.Concat(allHook, []string{"--webhook-batch=-2"}), "webhook: --webhook-batch must be at least 1 event per POST, got -2"},
		{[]string{"all", "--webhook-url", "https://h.example/x"}, "webhook: no secret file: give --webhook-secret-file, a file holding the secret"},
		{slices.Concat(allHook, []string{"--webhook-retry-base", "1m"}), "--webhook-retry-max (30s) is shorter than --webhook-retry-base (1m0s)"},
		{[]string{"all", "--webhook-url", "ftp://h.example/x", "--webhook-secret-file", secrets}, "(check --webhook-url or PUSHPIPE_WEBHOOK_URL; not repeated here"},
		{slices.Concat(hook, []string{"--rate=-5"}), "--rate must not be negative (0 caps nothing), got -5"},
		{slices.Concat(hook, []string{"--attempts", "0"}), "--attempts must be at least 1 POST per delivery, got 0"},
		{slices.Concat(hook, []string{"--attempts=-1"}), "--attempts must be at least 1 POST per delivery, got -1"},
		{slices.Concat(hook, []string{"--timeout", "0s"}), "--timeout must be a positive duration such as 10s, got 0s"},
		{slices.Concat(hook, []string{"--retry-base", "0s"}), "--retry-base must be 10ms or more, such as 250ms (a failed POST waits half of it or more before the next), got 0s"},
		{slices.Concat(hook, []string{"--retry-max", "0s"}), "--retry-max must be 10ms or more, such as 250ms (a failed POST waits half of it or more before the next), got 0s"},
		// 1ns POSTed to a failing receiver again without a pause,
		// --attempts times per delivery.
		{slices.Concat(hook, []string{"--retry-base", "1ns", "--retry-max", "1ns"}), "--retry-base must be 10ms or more, such as 250ms (a failed POST waits half of it or more before the next), got 1ns; " +
			"--retry-max must be 10ms or more, such as 250ms (a failed POST waits half of it or more before the next), got 1ns"},
		{slices.Concat(hook, []string{"--retry-base", "9ms"}), "--retry-base must be 10ms or more"},
		{slices.Concat(hook, []string{"--retry-max", "1ns"}), "--retry-max must be 10ms or more, such as 250ms (a failed POST waits half of it or more before the next), got 1ns"},
		{slices.Concat(allHook, []string{"--webhook-retry-base", "1ns", "--webhook-retry-max", "1ns"}), "webhook: --webhook-retry-base must be 10ms or more, such as 250ms " +
			"(a failed POST waits half of it or more before the next), got 1ns; --webhook-retry-max must be 10ms or more"},
		{slices.Concat(hook, []string{"--retry-base", "1m"}), "--retry-max (30s) is shorter than --retry-base (1m0s)"},
		// A receiver's Retry-After is honoured up to --retry-after-max,
		// never less than the backoff's own longest, never past a day.
		{slices.Concat(hook, []string{"--retry-after-max", "10s"}), "--retry-after-max (10s) is shorter than --retry-max (30s): a receiver's Retry-After would be cut below the backoff"},
		{slices.Concat(hook, []string{"--retry-max", "11m", "--retry-after-max", "10m"}), "--retry-after-max (10m0s) is shorter than --retry-max (11m0s)"},
		{slices.Concat(hook, []string{"--retry-after-max", "25h"}), "--retry-after-max must be 24h0m0s or less, got 25h0m0s"},
		{slices.Concat(allHook, []string{"--webhook-retry-after-max", "1s"}), "webhook: --webhook-retry-after-max (1s) is shorter than --webhook-retry-max (30s)"},
		{slices.Concat(hook, []string{"--rate=-1", "--timeout", "0s"}), "--rate must not be negative (0 caps nothing), got -1; --timeout must be"},
		{slices.Concat(allHook, []string{"--webhook-attempts", "0"}), "webhook: --webhook-attempts must be at least 1 POST per delivery, got 0"},
		{slices.Concat(allHook, []string{"--webhook-filter", "outcome=sent,failure"}), `outcome "failure" is not sent, failed or invalid`},
		// Under all the webhook runs only with --webhook-url: its other
		// flags without it would be dropped without a word.
		{[]string{"all", "--webhook-rate", "5"}, "--webhook-rate given, but --webhook-* flags need --webhook-url"},
		{[]string{"all", "--webhook-from", "now"}, "--webhook-from given, but --webhook-* flags need --webhook-url"},
		{slices.Concat(hook, []string{"--group="}), `--group must be a word of letters, digits, '.', '_' or '-', such as analytics, got "" (leave it out for webhook)`},
		{slices.Concat(allHook, []string{"--webhook-group="}), `--webhook-group must be a word`},
		{slices.Concat(hook, []string{"--linger", "10s"}), "--linger must be from 0 to 5s, got 10s"},
		{slices.Concat(allHook, []string{"--webhook-linger=-1s"}), "--webhook-linger must be from 0 to 5s, got -1s"},
		{slices.Concat(hook, []string{"--from", "later"}), `--from must be one of "oldest","now" but got "later"`},
		// A negative number after a flag is its value, checked as the
		// flag's own: kong read it as short flags, "expected int value
		// but got "-5" (short flag)", naming no allowed values.
		{[]string{"send", "--app", "a", "--channel", "x", "--rate-per-second", "-5"}, "--rate-per-second: must be a whole number of sends per second from 1 to 1000000, or 0 for no cap of its own; got -5"},
		{[]string{"send", "--app", "a", "--channel", "x", "--ttl", "-1s"}, "--ttl: must be between 1s and 672h0m0s (28 days), got -1s"},
		{[]string{"send", "--app", "a", "--user", "-5"}, "--user: user ids are positive, got -5"},
		// In a list too: kong split "3,-5" and read "-5" as short flags.
		{[]string{"send", "--app", "a", "--user", "3,-5", "--title", "t"}, "--user: user ids are positive, got -5"},
		{[]string{"results", "tail", "--user", "7,-5"}, "--user: user ids are positive, got -5"},
		// A negative number where an argument goes is that argument,
		// checked as the command's own: kong said "unknown flag -5, did
		// you mean "-h"?", and the flags after it still count.
		{[]string{"campaigns", "rate", "c1", "-5"}, "pushpipe: campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got -5"},
		{[]string{"campaigns", "rate", "c1", "-5", "--json"}, "campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got -5"},
		{[]string{"campaigns", "rate", "c1", "--json", "-5"}, "campaigns rate: the rate N: must be a whole number of sends per second from 0 (no cap of its own) to 1000000, got -5"},
		{[]string{"users", "show", "-5", "--json"}, "users show: ID: must be a positive integer, got -5"},
		{[]string{"users", "delete", "-3"}, "users delete: ID: must be a positive integer, got -3"},
		// Where a word after it may be a flag's value, moving it could
		// change what the line means: say how to write it instead.
		{[]string{"campaigns", "rate", "c1", "-5", "--prefix", "x"}, "pushpipe: -5 reads as a flag: give a negative number after --, with every flag before it (see pushpipe campaigns rate --help)"},
		{[]string{"campaigns", "rate", "c1", "-50", "--", "x"}, "pushpipe: -50 reads as a flag: give a negative number after --"},
		{[]string{"campaigns", "list", "--limit", "-1"}, "--limit: must be a whole number from 1 to 100 (default 20), got -1"},
		{[]string{"dlq", "list", "--limit", "-1"}, "--limit: must be 0 (all) or more, got -1"},
		{[]string{"bench", "--users", "-3"}, "--users: must be at least 1, got -3"},
		{[]string{"bench", "--overlap", "1.5"}, "--overlap: must be a share from 0 to 1, got 1.5"},
		// Refused after Redis and PostgreSQL had started (--replicas, exit 1),
		// or not at all (a --timeout of -1s gave up at once, after seeding).
		{[]string{"bench", "--timeout=-1s", "--warmup=-1s", "--replicas", "deliver"},
			`--timeout: must be a positive duration such as 30s, got -1s; --warmup: must be a positive duration such as 30s (or 0 for none), got -1s; --replicas "deliver"`},
		{[]string{"bench", "--messages", "--floor-for=-1s"}, "--floor-for: must be a positive duration such as 30s (or 0 for no floor), got -1s"},
		// Checked once the servers had started, or never: an empty --data put
		// their files in the current directory.
		{[]string{"dev", "--users=-1", "--data="}, "--users: must be at least 1 demo user, got -1; --data: must name a directory"},
		// resolve.New replaced it by its default; under all, resolve had no check.
		{[]string{"all", "--resolve-parallel", "0"}, "resolve: --resolve-parallel must be at least 1 range at once, got 0"},
		{slices.Concat(hook, []string{"--batch", "-1"}), "--batch"},
		{[]string{"all", "--webhook-secret-file", secrets, "--webhook-filter", "outcome=failed", "--tps", "5"},
			"--webhook-secret-file, --webhook-filter given, but --webhook-* flags need --webhook-url: without it the webhook stage does not run"},
	}
	// One parser for every case: Parse resets every flag to its default
	// first, and kong.New (help texts interpolated by regexp) took 0.4 s a
	// case under -race, 31 s of CI for this table.
	k, err := kong.New(&CLI{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		_, err = parseArgs(fresh(k), tt.give)
		if err == nil {
			t.Errorf("pushpipe %s: accepted", strings.Join(tt.give, " "))
			continue
		}
		msg := usageError(err)
		if !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "pushpipe: ") ||
			strings.Contains(msg, "pushpipe: error") || !strings.HasSuffix(msg, "--help)") {
			t.Errorf("pushpipe %s: %q, want one line with %q and the help to read", strings.Join(tt.give, " "), msg, tt.want)
		}
	}
	soon := time.Now().Add(30 * 24 * time.Hour) // --send-at is at most 90 days ahead
	for _, ok := range [][]string{{"split"}, {"deliver"}, {"all"}, {"status", "--interval", "2s"}, {"status", "--watch", "--interval", "100ms"},
		{"--partitions", "1024", "status"}, {"split", "--claim-idle", "100ms"},
		{"deliver", "--retry-base", "10ms", "--retry-max", "10ms"}, {"webhook", "--url", "https://h.example/x", "--secret-file", secrets, "--retry-base", "10ms", "--retry-max", "10ms"}, {"webhook", "--url", "https://h.example/x", "--secret-file", secrets, "--retry-after-max", "24h"},
		{"webhook", "--url", "https://h.example/x", "--secret-file", secrets, "--retry-max", "1m", "--retry-after-max", "1m"},
		// A --retry-max past the default 10m raises the Retry-After bound
		// with it: a deployment that set one still starts after an upgrade.
		{"webhook", "--url", "https://h.example/x", "--secret-file", secrets, "--retry-max", "11m"}, {"bench", "--chaos", "--chaos-every", "100ms"},
		{"fakeprovider", "--error-rate", "1", "--unregistered-rate", "0.5", "--bad-token-rate", "0.5", "--tps", "0", "--apns-keys", "T/K", "--listen", ":0"}, {"--log-level", "debug", "migrate"},
		{"send", "--app", "a", "--user", "1", "--ttl", "1h", "--title", "t"}, {"send", "--app", "a", "--channel", "x", "--priority", "high", "--body", "b"},
		{"send", "--app", "a", "--channel", "x", "--send-at", soon.UTC().Format(time.RFC3339), "--allow-empty", "--title", "t"},
		{"send", "--app", "a", "--channel", "x", "--send-at", soon.In(time.FixedZone("", 2*3600)).Format(time.RFC3339), "--silent"},
		{"replay", "--resplit", "--campaign", "c", "--dry-run"}, {"replay", "--stream", "deliver", "--from", "0", "--high-water", "5", "--json"},
		{"bench", "--replicas", "deliver=3,resolve=2", "--warmup", "0s"}, {"resolve", "--parallel", "1"},
		{"dlq", "list", "--stream", "deliver"}, {"dlq", "drop", "--all", "--stream", pipeline.Express.Stream(pipeline.StreamDeliver)},
		hook, allHook, slices.Concat(hook, []string{"--rate", "0", "--filter", "outcome=failed,invalid"})} {
		// On the same parser: a kong each was 10 s of this test.
		if _, err := fresh(k).Parse(ok); err != nil {
			t.Errorf("pushpipe %s: %v", strings.Join(ok, " "), err)
		}
	}
	// The environment is checked as the flags are.
	t.Setenv("PUSHPIPE_PARTITIONS", "0")
	if k, err = kong.New(&CLI{}, options()...); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Parse([]string{"status"}); err == nil || !strings.Contains(err.Error(), "PUSHPIPE_PARTITIONS must be at least 1") {
		t.Errorf("PUSHPIPE_PARTITIONS=0: %v", err)
	}
}

// The webhook URL may come from PUSHPIPE_WEBHOOK_URL, standalone and under
// all, so a URL with credentials or a token need not sit in argv; the help
// says so.
func TestWebhookURLFromEnvironment(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secrets, []byte("s1-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const url = "https://bob:hunter2@hooks.example.com/services/T0KEN123"
	t.Setenv("PUSHPIPE_WEBHOOK_URL", url)
	tests := []struct {
		args []string
		own  func(cmd any) stage
	}{
		{[]string{"webhook", "--secret-file", secrets}, func(cmd any) stage { return cmd.(*stageCmd).Own }},
		{[]string{"all", "--webhook-secret-file", secrets}, func(cmd any) stage { return cmd.(*AllCmd).stages()["webhook"] }},
	}
	for _, tt := range tests {
		w, _ := tt.own(command(t, tt.args...)).(*WebhookFlags)
		if w == nil || w.URL != url {
			t.Errorf("pushpipe %s with PUSHPIPE_WEBHOOK_URL: the webhook runs with %+v", strings.Join(tt.args, " "), w)
		}
	}
	for _, args := range [][]string{{"webhook"}, {"all"}} {
		if out := help(t, args...); !strings.Contains(out, "PUSHPIPE_WEBHOOK_URL") {
			t.Errorf("pushpipe %s --help does not name PUSHPIPE_WEBHOOK_URL:\n%s", args[0], out)
		}
	}
}

// The webhook's advice at run time (a 413: "lower --batch") names its flags
// as the process was given them: under all, --batch is entries per read of
// every stage, and the webhook's is --webhook-batch.
func TestWebhookAdviceNamesItsFlags(t *testing.T) {
	secrets := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(secrets, []byte("s1-0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		own    func(cmd any) stage
		prefix string
	}{
		{[]string{"webhook", "--url", "https://h.example/x", "--secret-file", secrets}, func(cmd any) stage { return cmd.(*stageCmd).Own }, ""},
		{[]string{"all", "--webhook-url", "https://h.example/x", "--webhook-secret-file", secrets},
			func(cmd any) stage { return cmd.(*AllCmd).stages()["webhook"] }, "webhook-"},
	}
	for _, tt := range tests {
		w, _ := tt.own(command(t, tt.args...)).(*WebhookFlags)
		if w == nil {
			t.Fatalf("pushpipe %s: no webhook", strings.Join(tt.args, " "))
		}
		if cfg, err := w.config(); err != nil || cfg.FlagPrefix != tt.prefix {
			t.Errorf("pushpipe %s: the webhook's flags are prefixed %q (%v), want %q", strings.Join(tt.args, " "), cfg.FlagPrefix, err, tt.prefix)
		}
	}
}

// Flags required one of a group (xor) read as a choice in the usage lines:
// "send --app=STRING --channel=CHANNEL --user=USER,..." asked for both,
// which the parser refuses.
func TestHelpShowsXorFlagsAsAChoice(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"send"}, "Usage: pushpipe send --app=STRING (--channel=CHANNEL | --user=USER,... | --token=PLATFORM:TOKEN) [flags]\n"},
		{nil, "  send --app=STRING (--channel=CHANNEL | --user=USER,... | --token=PLATFORM:TOKEN) [flags]\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if out := help(t, tt.args...); !strings.Contains(out, tt.want) {
				t.Errorf("pushpipe %s --help:\n%s\nwant %q", strings.Join(tt.args, " "), out, tt.want)
			}
		})
	}
}

// Help names a command's arguments as its errors do: the binary's help
// said "Usage: pushpipe dlq show <id>" while the same binary refused
// `dlq show` with "ID: is required".
func TestHelpNamesArgumentsAsErrorsDo(t *testing.T) {
	bin := pipelinetest.Binary(t)
	tests := []struct {
		give      []string // the command; run without its argument, it is refused
		wantUsage string
		wantArg   string // the Arguments row
		wantErr   string // "" when leaving the argument out is no error
	}{
		{[]string{"dlq", "show"}, "Usage: pushpipe dlq show ID [flags]\n", "\n  ID      The dead letter's id", "ID: is required"},
		{[]string{"campaigns", "cancel"}, "Usage: pushpipe campaigns cancel ID [flags]\n", "\n  ID      The campaign to cancel.", "ID: is required"},
		{[]string{"users", "show"}, "Usage: pushpipe users show ID [flags]\n", "\n  ID      The user id.", "ID: is required"},
		{[]string{"users", "delete"}, "Usage: pushpipe users delete ID\n", "\n  ID      The user id.", "ID: is required"},
		{[]string{"results", "retire"}, "Usage: pushpipe results retire GROUP [flags]\n", "\n  GROUP      The receiver's group", "GROUP: is required"},
		{[]string{"results", "unretire"}, "Usage: pushpipe results unretire GROUP [flags]\n", "\n  GROUP      The retired", "GROUP: is required"},
		{[]string{"status"}, "Usage: pushpipe status [ID] [flags]\n", "\n  [ID]      Also show", ""},
		{[]string{"dlq", "retry"}, "Usage: pushpipe dlq retry [ID ...] [flags]\n", "\n  [ID ...]    Dead letter ids.", ""},
		{[]string{"import", "subscribers"}, "Usage: pushpipe import subscribers --channel=STRING [FILE]\n", "\n  [FILE]      One user id a line", ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			cmd := exec.CommandContext(t.Context(), bin, append(slices.Clone(tt.give), "--help")...)
			cmd.Env = append(os.Environ(), "PUSHPIPE_REDIS_ADDR=127.0.0.1:1")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			help := string(out)
			if !strings.Contains(help, tt.wantUsage) || !strings.Contains(help, tt.wantArg) || kongArg.MatchString(help) {
				t.Errorf("help:\n%s\nwant %q and %q", help, tt.wantUsage, tt.wantArg)
			}
			if tt.wantErr == "" {
				return
			}
			stderr, _, err := run(t, bin, nil, tt.give...)
			if err == nil || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("without its argument: %v %q, want %q", err, stderr, tt.wantErr)
			}
		})
	}
}

// `pushpipe --help` and `pushpipe` alone list the commands an operator
// types first, dev, send and status ahead, then the pipeline's processes
// under a title of their own (the stage commands in the stage table's
// order), then the test tools: they listed migrate, api and the five
// stages first, which a deployment runs and nobody types.
func TestHelpListsWhatAnOperatorTypesFirst(t *testing.T) {
	want := []string{"\nCommands:\n", "\n  dev ", "\n  send ", "\n  status ", "\n  campaigns list ", "\n  messages list ",
		"\n  channels list ", "\n  users show ", "\n  results tail ", "\n  dlq list ", "\nPipeline processes", "\n  migrate ", "\n  api "}
	for _, def := range pipeline.Stages {
		want = append(want, "\n  "+def.Name+" ")
	}
	want = append(want, "\n  all ", "\nTesting:\n", "\n  fakeprovider ", "\n  bench ")
	out := help(t)
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("pushpipe --help:\n%s\nwant %q after %q (in this order: %q)", out, w, out[:len(out)-len(rest)], want)
		}
		rest = rest[i+1:]
	}
	_, err := kongParse()
	if got := usageError(err); !strings.Contains(got, `expected one of "dev", "send", "status", "campaigns", "messages", ...`) {
		t.Errorf("pushpipe alone: %q, want dev, send and status first", got)
	}
}

// A command line that names no command (`pushpipe` alone, `pushpipe
// campaigns`) prints that command's help, grouped as --help prints it, to
// stdout, and exits 2: `pushpipe` alone said one line, `expected one of
// "dev", "send", "status", "campaigns", "messages", ...`. A mistyped
// command and a missing argument stay a one-line error on stderr.
func TestNoCommandPrintsHelp(t *testing.T) {
	bin := pipelinetest.Binary(t)
	// pushpipe ARGS: its stdout, stderr and exit status.
	pushpipe := func(args ...string) (string, string, int) {
		cmd := exec.CommandContext(t.Context(), bin, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	tests := []struct {
		give     []string
		wantHelp []string // the command line whose --help is printed; nil for none
		wantErr  string   // on stderr ("" for nothing)
	}{
		{[]string{}, []string{}, ""},
		{[]string{"campaigns"}, []string{"campaigns"}, ""},
		{[]string{"dlq"}, []string{"dlq"}, ""},
		{[]string{"--log-level", "warn"}, []string{}, ""},
		{[]string{"nosuchcmd"}, nil, "pushpipe: unexpected argument nosuchcmd (see pushpipe --help)\n"},
		{[]string{"dlq", "show"}, nil, "pushpipe: ID: is required (see pushpipe dlq show --help)\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.give, " "), func(t *testing.T) {
			t.Parallel()
			want := ""
			if tt.wantHelp != nil {
				want, _, _ = pushpipe(append(tt.wantHelp, "--help")...)
			}
			out, stderr, code := pushpipe(tt.give...)
			if code != 2 || out != want || stderr != tt.wantErr {
				t.Errorf("exit %d, stdout:\n%s\nstderr: %q\nwant exit 2, stdout:\n%s\nstderr: %q", code, out, stderr, want, tt.wantErr)
			}
		})
	}
	if out, _, _ := pushpipe(); !strings.Contains(out, "\nPipeline processes") {
		t.Errorf("pushpipe alone printed no grouped help:\n%s", out)
	}
}
