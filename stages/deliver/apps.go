package deliver

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/pushpipe/pushpipe/pipeline/devices"
)

// Apps is the --apps file (TOML) of `deliver` and `api`: every app with its
// provider credentials and its app keys (DESIGN, "Apps and their
// credentials"). Secrets are never in it but by file path (key, cert,
// credentials) or environment variable name (password_env, keys_env), or as
// app keys the API alone reads; nothing here ever prints them.
//
//	[apps."com.example.news"]
//	apns = { key = "/secrets/news.p8", key_id = "ABC123", team_id = "TEAM1", topic = "com.example.news" }
//	fcm = { credentials = "/secrets/news-sa.json" }
//	tps = 5000
//	keys_env = "NEWS_APP_KEYS"
type Apps struct {
	Apps map[string]App `toml:"apps"`
}

// App is one app's entry. A platform without credentials fails its devices
// with reason "no credentials" and keeps their tokens.
type App struct {
	APNS *AppAPNS `toml:"apns"`
	FCM  *AppFCM  `toml:"fcm"`
	// TPS caps this app's sends per provider, cluster-wide; 0: the
	// process's --tps.
	TPS int `toml:"tps"`
	// Keys are the app keys shipped inside this app (good only for its
	// /v1/devices*); KeysEnv names a variable holding them comma-separated.
	Keys    []string `toml:"keys"`
	KeysEnv string   `toml:"keys_env"`
}

// AppAPNS is an app's APNs: token auth (Key, KeyID, TeamID) or certificate
// auth (Cert, its password in the variable PasswordEnv).
type AppAPNS struct {
	Key         string `toml:"key"` // a .p8 file
	KeyID       string `toml:"key_id"`
	TeamID      string `toml:"team_id"`
	Cert        string `toml:"cert"` // a .p12 or .pem file
	PasswordEnv string `toml:"password_env"`
	Topic       string `toml:"topic"` // default: the app id
	Host        string `toml:"host"`  // default Apple production
}

// AppFCM is an app's FCM project.
type AppFCM struct {
	Credentials string `toml:"credentials"` // a service-account JSON file
	Project     string `toml:"project"`
	Endpoint    string `toml:"endpoint"`
}

// LoadApps reads and checks an apps file. Its errors name the app and the
// field, never a value.
func LoadApps(path string) (Apps, error) {
	var a Apps
	md, err := toml.DecodeFile(path, &a)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			// Not perr.Error(): its message may quote the line, a key
			// among it. The names of keys are no secret, and say where
			// to look: "not valid TOML at line 5" alone was all an app
			// given twice got.
			if key, ok := definedTwice(perr.Message); ok {
				return Apps{}, fmt.Errorf("apps file %s: line %d: %s is given twice (an app's table, or a field of it); keep one", path, perr.Position.Line, key)
			}
			in := ""
			if perr.LastKey != "" {
				in = ", in " + perr.LastKey
			}
			return Apps{}, fmt.Errorf("apps file %s: not valid TOML at line %d%s; correct it", path, perr.Position.Line, in)
		}
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return Apps{}, fmt.Errorf("apps file: %w", err)
		}
		// The decoder's message is not printed either; its line and key
		// are, or "a value has the wrong type" left a file of many apps
		// to be searched.
		if m := wrongType.FindStringSubmatch(err.Error()); m != nil {
			return Apps{}, fmt.Errorf("apps file %s: line %s: %s has the wrong type; see the --apps example in the README", path, m[1], m[2])
		}
		return Apps{}, fmt.Errorf("apps file %s: a value has the wrong type; see the --apps example in the README", path)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return Apps{}, fmt.Errorf("apps file %s: unknown key %s; see the --apps example in the README", path, und[0])
	}
	if err := a.validate(); err != nil {
		return Apps{}, fmt.Errorf("apps file %s: %w", path, err)
	}
	return a, nil
}

// wrongType finds the line and key in a TOML decoder's type error
// ("toml: line 2 (last key "apps.a.tps"): incompatible types: ...").
var wrongType = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\)`)

// definedTwice is the key a TOML decoder's message says is defined twice
// ("Key 'apps.news' has already been defined.").
func definedTwice(msg string) (string, bool) {
	key, ok := strings.CutPrefix(msg, "Key '")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(key, "' has already been defined.")
}

func (a Apps) validate() error {
	if len(a.Apps) == 0 {
		return errors.New(`no app: add an [apps."<app id>"] table`)
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(a.Apps)) {
		app := a.Apps[id]
		if err := devices.ValidateApp(id); err != nil {
			errs = append(errs, fmt.Errorf("app %q: %w", id, err))
		}
		if p := app.APNS; p != nil {
			switch {
			case p.Key == "" && p.Cert == "":
				errs = append(errs, fmt.Errorf("app %q: apns needs key (a .p8 file) with key_id and team_id, or cert", id))
			case p.Key != "" && p.Cert != "":
				errs = append(errs, fmt.Errorf("app %q: apns takes key or cert, not both", id))
			case p.Key != "" && (p.KeyID == "" || p.TeamID == ""):
				errs = append(errs, fmt.Errorf("app %q: apns token auth needs key_id and team_id", id))
			}
		}
		if p := app.FCM; p != nil && p.Credentials == "" && p.Project == "" {
			errs = append(errs, fmt.Errorf("app %q: fcm needs credentials (a service-account file) or project", id))
		}
		if app.TPS < 0 {
			errs = append(errs, fmt.Errorf("app %q: tps must not be negative", id))
		}
	}
	return errors.Join(errs...)
}

// The variables an apps file names are read where they are used, and only
// there: the API reads keys_env (AppKeys), deliver password_env
// (AppSenders). LoadApps checked both, so a deliver process refused to
// start without the app keys it never uses, and the API without the APNs
// certificate's password: each process had to hold the other's secrets.

// providerEnv checks that every password_env of apps is set: deliver's
// part of the file.
func (a Apps) providerEnv() error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(a.Apps)) {
		if p := a.Apps[id].APNS; p != nil && p.PasswordEnv != "" {
			if _, ok := os.LookupEnv(p.PasswordEnv); !ok {
				errs = append(errs, fmt.Errorf("app %q: apns password_env names %s, which is not set in deliver's environment", id, p.PasswordEnv))
			}
		}
	}
	return errors.Join(errs...)
}

// Known reports whether id is one of the apps.
func (a Apps) Known(id string) bool {
	_, ok := a.Apps[id]
	return ok
}

// AppKeys are the app keys of every app (its keys and those of its
// keys_env), for the API: a keys_env that is not set is an error.
func (a Apps) AppKeys() (map[string][]string, error) {
	out := map[string][]string{}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(a.Apps)) {
		app := a.Apps[id]
		keys := slices.Clone(app.Keys)
		if app.KeysEnv != "" {
			v, ok := os.LookupEnv(app.KeysEnv)
			if !ok {
				errs = append(errs, fmt.Errorf("app %q: keys_env names %s, which is not set in the API's environment", id, app.KeysEnv))
			}
			for k := range strings.SplitSeq(v, ",") {
				if k = strings.TrimSpace(k); k != "" {
					keys = append(keys, k)
				}
			}
		}
		if len(keys) > 0 {
			out[id] = keys
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
