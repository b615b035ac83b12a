package main

import (
	"runtime/debug"
	"strings"
)

// version is what `pushpipe --version` prints, from the build info the go
// tool records: the module version (a tag, or a pseudo-version), else the
// VCS revision and whether the tree was modified.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "pushpipe (no build info)"
	}
	v := bi.Main.Version
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if v == "" || v == "(devel)" {
		v = "devel"
		if rev := settings["vcs.revision"]; rev != "" {
			v += " " + rev[:min(12, len(rev))]
			if settings["vcs.modified"] == "true" {
				v += "+modified"
			}
		}
	}
	return strings.Join([]string{"pushpipe", v, bi.GoVersion}, " ")
}
