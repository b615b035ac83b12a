package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const devLockFile = "dev.lock"

// lockDevDir holds dir for one `pushpipe dev` until release (or its exit:
// the kernel drops a flock with the process). A second `make dev` in the
// same checkout, which the README's "in another shell" invites, started a
// second redis-server on a new port appending to the first one's AOF in
// dir/redis, overwrote its logs, and ended on "api exited during start:
// address already in use", which did not say that one was running already.
func lockDevDir(dir string) (release func(), err error) {
	path := filepath.Join(dir, devLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		holder := "another process"
		if b, _ := os.ReadFile(path); len(b) > 0 {
			holder = "pid " + strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("dev already runs on %s (%s): use it from another shell (source %s), "+
			"or stop it (Ctrl-C where it runs) before starting it again", dir, holder, filepath.Join(dir, devEnvFile))
	}
	// The holder's pid, for the refusal above; written only once held.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	// Unlock before closing: a close drops the lock only when no other
	// descriptor shares f's open file, and a fork of this process (any
	// exec.Cmd, by a stage or by a test beside it) holds a copy until its
	// exec, so a next dev could be refused for a moment after this returned.
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
