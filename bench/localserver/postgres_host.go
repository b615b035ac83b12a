package localserver

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
)

// runsAs names the user initdb and postgres run as, for messages.
func runsAs(cred *syscall.Credential) string {
	if cred != nil {
		return fmt.Sprintf("user postgres (uid %d; we are root, and PostgreSQL refuses to run as root)", cred.Uid)
	}
	if u, err := user.Current(); err == nil {
		return "user " + u.Username
	}
	return fmt.Sprintf("uid %d", os.Geteuid())
}

// explain adds to a failed initdb or server start what the user can do
// about it: who ran it where, and, for a directory that persists, how to
// start over. The error itself carries the output or log tail.
func (p *Postgres) explain(err error, started bool) error {
	what := "initdb"
	if started {
		what = "postgres"
	}
	hint := fmt.Sprintf("%s ran as %s in %s", what, runsAs(p.cred), p.Dir)
	if started {
		hint += fmt.Sprintf("; its log is %s", filepath.Join(p.Dir, "postgres.log"))
	}
	if !p.ownsDir && started {
		hint += fmt.Sprintf(". If the data in %s is from another PostgreSQL version or damaged, remove %s to start over (its data is lost)", p.dataDir, p.Dir)
	}
	return fmt.Errorf("%w\n%s", err, hint)
}

// reachable checks, when we are root, that user postgres can enter dir:
// initdb and postgres run there as that user, and a parent closed to it (a
// checkout under /root, or under a 0700 mktemp -d dir) otherwise shows up as
// "fork/exec .../initdb: permission denied", which names the binary instead
// of the directory.
func reachable(dir, initdb string, cred *syscall.Credential) error {
	if cred == nil {
		return nil // the directory is ours: MkdirAll would have failed
	}
	closed, st := closedAncestor(dir, cred)
	if closed == "" {
		return nil
	}
	// The mode bits say no; an ACL may still say yes: ask the kernel.
	probe := exec.Command(initdb, "--version")
	probe.Dir = dir
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if probe.Run() == nil {
		return nil
	}
	return fmt.Errorf("PostgreSQL runs as %s, which cannot enter %s (mode %04o, owner uid %d), a parent of its directory %s: "+
		"put that directory where user postgres can reach it (under /tmp or /var/tmp, say), or let it through with \"chmod o+x %s\"",
		runsAs(cred), closed, st.Mode&0o7777, st.Uid, dir, closed)
}

// closedAncestor returns the first directory on the way from / to dir
// (dir included) that the user cred cannot search, going by the mode bits
// and cred's uid and primary gid: exec.Cmd with a Credential clears the
// supplementary groups. "" means every one lets it through.
func closedAncestor(dir string, cred *syscall.Credential) (string, *syscall.Stat_t) {
	var path []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		path = append(path, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(path) - 1; i >= 0; i-- {
		var st syscall.Stat_t
		if err := syscall.Stat(path[i], &st); err != nil {
			continue // gone or unreadable: let initdb report it
		}
		var bit uint32
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid:
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit == 0 {
			return path[i], &st
		}
	}
	return "", nil
}

// postgresBinDir returns the directory holding both postgres and initdb:
// the one on PATH if any, else the highest /usr/lib/postgresql/*/bin
// (Debian does not put them on PATH).
func postgresBinDir() (string, error) {
	var dirs []string
	if path, err := exec.LookPath("postgres"); err == nil {
		dirs = append(dirs, filepath.Dir(path))
	}
	versioned, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(d string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		return v
	}
	slices.SortFunc(versioned, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	for _, d := range append(dirs, versioned...) {
		if isFile(filepath.Join(d, "postgres")) && isFile(filepath.Join(d, "initdb")) {
			return d, nil
		}
	}
	return "", errors.New(postgresInstall)
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// postgresCredential returns the postgres user's credentials when we run as
// root (initdb and postgres refuse to run as root), else nil. Setting the
// credentials on exec.Cmd rather than wrapping in runuser keeps the server
// our direct child, so signals reach it and Wait tracks it.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user (%v): %s", err, postgresInstall)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
