package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// devState is what `pushpipe dev` keeps across runs of one data directory
// (DATA/dev.json, 0600): the ports of the servers it started and the API's
// credentials. A second shell that sourced DATA/env keeps working after dev
// restarts, and the curl lines a user saved keep their token.
type devState struct {
	RedisPort    int    `json:"redis_port,omitempty"`
	PostgresPort int    `json:"postgres_port,omitempty"`
	AdminToken   string `json:"admin_token"`
	AppKey       string `json:"app_key"`
}

const devStateFile, devEnvFile = "dev.json", "env"

// loadDevState reads dir's state, or makes new credentials for a first run
// (or a run without a data directory).
func loadDevState(dir string) (devState, error) {
	st := devState{}
	if dir != "" {
		b, err := os.ReadFile(filepath.Join(dir, devStateFile))
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return st, err
		default:
			if err := json.Unmarshal(b, &st); err != nil {
				return st, fmt.Errorf("%s: %w (remove it: dev makes a new one, with new tokens)", filepath.Join(dir, devStateFile), err)
			}
		}
	}
	if st.AdminToken == "" || st.AppKey == "" {
		st.AdminToken, st.AppKey = randomHex(24), randomHex(24)
	}
	return st, nil
}

// redisAddr and databaseURL are the addresses dev's own servers had on the
// last run: a shell that sourced DATA/env passes them back in, and they
// mean "start them again", not "use a server that is already there".
func (st devState) redisAddr() string {
	if st.RedisPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(st.RedisPort))
}

func (st devState) ownsDatabase(u string) bool {
	if st.PostgresPort == 0 || u == "" {
		return false
	}
	p, err := url.Parse(u)
	return err == nil && p.Hostname() == "127.0.0.1" && p.Port() == strconv.Itoa(st.PostgresPort) && p.User.Username() == "postgres"
}

// save writes the state, its owner's only: it holds the tokens.
func (st devState) save(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(dir, devStateFile), append(b, '\n'))
}

// devEnv is what another shell needs to talk to a running `pushpipe dev`.
type devEnv struct {
	Redis                         []string // PUSHPIPE_REDIS_*=VALUE: the address and any credentials (Servers.RedisEnv)
	DatabaseURL, API, Prefix, App string
	Partitions                    int
	State                         devState
}

// write writes DATA/env, the exports of every setting the CLI and curl
// need, 0600 (it holds the tokens), and returns its path.
func (e devEnv) write(dir string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by pushpipe dev for %s: `source` this file in another shell\n", dir)
	b.WriteString("# to use the CLI (pushpipe status, send, ...) and curl against it.\n")
	var vars [][2]string
	for _, kv := range e.Redis {
		k, v, _ := strings.Cut(kv, "=")
		vars = append(vars, [2]string{k, v})
	}
	for _, kv := range append(vars, [][2]string{
		{"PUSHPIPE_DATABASE_URL", e.DatabaseURL},
		{"PUSHPIPE_PARTITIONS", strconv.Itoa(e.Partitions)},
		{"PUSHPIPE_PREFIX", e.Prefix},
		{"PUSHPIPE_ADMIN_TOKEN", e.State.AdminToken},
		{"PUSHPIPE_APP_KEYS", e.App + "=" + e.State.AppKey},
		{"PUSHPIPE_APP_KEY", e.State.AppKey}, // the demo app's key alone, for curl
		{"PUSHPIPE_API", e.API},
		// As on dev's API: pushpipe send, refusing an app the API does
		// not know, names dev's app, not PUSHPIPE_APP_KEYS to edit.
		{"PUSHPIPE_DEV", "1"},
	}...) {
		fmt.Fprintf(&b, "export %s=%s\n", kv[0], shellQuote(kv[1]))
	}
	path := filepath.Join(dir, devEnvFile)
	return path, writePrivate(path, []byte(b.String()))
}

// writePrivate writes a file only its owner may read, whatever it was
// before.
func writePrivate(path string, b []byte) error {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// portOf is the port of a host:port address (0 when there is none).
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// urlPort is the port of a URL (0 when there is none).
func urlPort(u string) int {
	p, err := url.Parse(u)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p.Port())
	return n
}
