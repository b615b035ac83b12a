package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// dev's state survives a run: the tokens and ports come back as written,
// and a first run makes tokens of its own.
func TestDevStateKeepsPortsAndTokens(t *testing.T) {
	dir := t.TempDir()
	st, err := loadDevState(dir)
	if err != nil || len(st.AdminToken) != 48 || len(st.AppKey) != 48 || st.AdminToken == st.AppKey {
		t.Fatalf("first run: %+v, %v", st, err)
	}
	st.RedisPort, st.PostgresPort = 6390, 5440
	if err := st.save(dir); err != nil {
		t.Fatal(err)
	}
	again, err := loadDevState(dir)
	if err != nil || again != st {
		t.Fatalf("second run: %+v, %v; want %+v", again, err, st)
	}
	if fi, err := os.Stat(filepath.Join(dir, devStateFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v, want 0600", devStateFile, fi.Mode(), err)
	}
	tests := []struct {
		give string
		want bool
	}{
		{"postgres://postgres@127.0.0.1:5440/pushpipe?sslmode=disable", true},
		{"postgres://postgres@127.0.0.1:5441/pushpipe?sslmode=disable", false},
		{"postgres://app@127.0.0.1:5440/pushpipe", false},
		{"postgres://postgres@db.example.com:5440/pushpipe", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := again.ownsDatabase(tt.give); got != tt.want {
			t.Errorf("ownsDatabase(%q) = %v, want %v", tt.give, got, tt.want)
		}
	}
	if again.redisAddr() != "127.0.0.1:6390" {
		t.Errorf("redisAddr = %q", again.redisAddr())
	}
}

// The env file is what sh reads back: every value, quoted where needed.
// PUSHPIPE_DEV too, as dev's API has it: send in that shell refused an
// unknown app with advice to edit PUSHPIPE_APP_KEYS, which dev sets.
func TestDevEnvIsWhatTheShellReads(t *testing.T) {
	dir := t.TempDir()
	e := devEnv{Redis: []string{"PUSHPIPE_REDIS_ADDR=127.0.0.1:6390", "PUSHPIPE_REDIS_PASSWORD=pa ss'word"}, DatabaseURL: "postgres://postgres@127.0.0.1:5440/pushpipe?sslmode=disable&x=it's",
		API: "http://127.0.0.1:8080", Prefix: "pp", App: "demo", Partitions: 16,
		State: devState{AdminToken: "adm1n", AppKey: "k3y"}}
	path, err := e.write(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("env file: %v %v, want 0600", fi.Mode(), err)
	}
	out, err := exec.Command("sh", "-c", `. "$0" && printf '%s|%s|%s|%s|%s|%s|%s|%s' "$PUSHPIPE_REDIS_ADDR" "$PUSHPIPE_REDIS_PASSWORD" "$PUSHPIPE_DATABASE_URL" "$PUSHPIPE_ADMIN_TOKEN" "$PUSHPIPE_APP_KEYS" "$PUSHPIPE_PARTITIONS" "$PUSHPIPE_API" "$PUSHPIPE_DEV"`, path).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{"127.0.0.1:6390", "pa ss'word", e.DatabaseURL, "adm1n", "demo=k3y", "16", e.API, "1"}, "|")
	if string(out) != want {
		t.Fatalf("sourced:\n%s\nwant:\n%s", out, want)
	}
}

// What dev says to type in another shell starts with a cd to where dev
// runs, so it works from the directory `make -C clone dev` was run in; the
// binary is ./NAME there when it is in that directory, else its path.
func TestSecondShell(t *testing.T) {
	tests := []struct {
		name, wd, bin string
		want          []string
	}{
		{"make dev", "/home/dev1/pp", "/home/dev1/pp/pushpipe",
			[]string{"cd /home/dev1/pp && source .pushpipe/env", `./pushpipe send --app demo --channel sports --title "Goal!" --wait; ./pushpipe status`}},
		{"a binary elsewhere", "/home/dev1/pp", "/usr/local/bin/pushpipe",
			[]string{"cd /home/dev1/pp && source .pushpipe/env", `/usr/local/bin/pushpipe send --app demo --channel sports --title "Goal!" --wait; /usr/local/bin/pushpipe status`}},
		{"a space in the path", "/home/dev1/my pp", "/home/dev1/my pp/bin/pushpipe",
			[]string{"cd '/home/dev1/my pp' && source .pushpipe/env", `bin/pushpipe send --app demo --channel sports --title "Goal!" --wait; bin/pushpipe status`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := secondShell(tt.wd, filepath.Join(tt.wd, ".pushpipe", "env"), tt.bin, "demo")
			if len(got) < 2 || got[0] != tt.want[0] || got[1] != tt.want[1] {
				t.Errorf("secondShell = %q\nwant it to start with %q", got, tt.want)
			}
		})
	}
}
