package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// devPostgresBase holds, as root, the PostgreSQL directories of `pushpipe
// dev`: /var/tmp is open to every user and, unlike /tmp, survives a reboot,
// as dev's data does. A variable for tests.
var devPostgresBase = "/var/tmp"

// DevPostgresDir returns where `pushpipe dev` keeps PostgreSQL's files
// (data/, postgres.log, the socket) for the data directory dataDir, and a
// note for the user when there is something to know.
//
// A normal user keeps them in dataDir/postgres. Root cannot: PostgreSQL
// refuses to run as root, so it runs as user postgres, which cannot enter
// dataDir when any parent is closed to it (a clone under /root, or in a
// 0700 mktemp -d dir); dataDir itself is 0700. So root keeps them in
// /var/tmp/pushpipe-dev-HASH, HASH from dataDir's real path: every run from
// one checkout finds its data again, two checkouts never share. That
// directory is owned by postgres, 0700; dataDir/postgres is a symlink to it
// (`make clean` removes both), and it holds a file naming the checkout.
func DevPostgresDir(dataDir string) (dir, note string, err error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", err
	}
	link := filepath.Join(dataDir, "postgres")
	if os.Geteuid() != 0 {
		return link, "", nil
	}
	real, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return "", "", err
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(real))
	dir = filepath.Join(devPostgresBase, "pushpipe-dev-"+hex.EncodeToString(sum[:8]))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", "", fmt.Errorf("PostgreSQL directory: %w", err)
	}
	if err := checkDevDir(dir); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "pushpipe-checkout"), []byte(real+"\n"), 0o600); err != nil {
		return "", "", fmt.Errorf("PostgreSQL directory: %w", err)
	}
	note = fmt.Sprintf("as root, PostgreSQL runs as user postgres, so its files are in %s (linked from %s), which that user can reach", dir, link)
	switch st, err := os.Lstat(link); {
	case errors.Is(err, fs.ErrNotExist):
		err = os.Symlink(dir, link)
		if err != nil {
			return "", "", err
		}
	case err != nil:
		return "", "", err
	case st.Mode()&fs.ModeSymlink != 0:
		if target, _ := os.Readlink(link); target != dir {
			if err := os.Remove(link); err != nil {
				return "", "", err
			}
			if err := os.Symlink(dir, link); err != nil {
				return "", "", err
			}
		}
	default:
		note += fmt.Sprintf("; %s is from an earlier run and no longer used: remove it", link)
	}
	return dir, note, nil
}

// checkDevDir refuses a directory under dev's predictable name that
// someone else could have planted in the world-writable /var/tmp: it must
// be a real directory (not a symlink, which the chown to postgres would
// follow) owned by root or postgres. The sticky bit keeps others from
// replacing it afterwards.
func checkDevDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || !st.IsDir() {
		return fmt.Errorf("%s is not a directory: remove it", dir)
	}
	if sys.Uid == 0 {
		return nil
	}
	if u, err := user.Lookup("postgres"); err == nil && u.Uid == strconv.Itoa(int(sys.Uid)) {
		return nil
	}
	return fmt.Errorf("%s is owned by uid %d, not root or postgres: remove it (if you trust its data, chown it to postgres)", dir, sys.Uid)
}
