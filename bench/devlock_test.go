package bench

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pushpipe/pushpipe/pipeline/pipelinetest"
)

// A second `pushpipe dev` on a data directory that one already runs on
// refuses before it starts anything, and says what to do: the second `make
// dev` started its own redis-server on the first one's AOF directory.
func TestDevRefusesADirectoryInUse(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), ".pushpipe")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The first dev's hold: a flock on DATA/dev.lock, its pid inside.
	f, err := os.OpenFile(filepath.Join(dir, "dev.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("4242\n"); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err = Dev(ctx, DevConfig{Servers: ServerConfig{DataDir: dir}, Bin: pipelinetest.Binary(t), Users: 10, Partitions: 16, Listen: "127.0.0.1:1", Once: true, Out: io.Discard})
	for _, want := range []string{"dev already runs on " + dir + " (pid 4242)", "source " + filepath.Join(dir, "env"), "Ctrl-C"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("second dev: %v; want an error with %q", err, want)
		}
	}
	for _, started := range []string{"redis", "postgres", "logs"} {
		if _, err := os.Lstat(filepath.Join(dir, started)); err == nil {
			t.Errorf("second dev made %s/%s: it started before refusing", dir, started)
		}
	}
}

// Released (the first dev ended), the lock is dev's to take, and its
// release lets the next one take it in turn, even while another descriptor
// shares the lock's open file: a fork between open and exec holds such a
// copy, and CI once refused the second lock because a test beside this one
// was starting a process at that moment.
func TestDevLockIsReleased(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for i := range 3 {
		release, err := lockDevDir(dir)
		if err != nil {
			t.Fatalf("lock %d: %v", i+1, err)
		}
		if i == 1 {
			// What a forked child holds until its exec: a dup of the lock's fd.
			dup, err := syscall.Dup(lockFd(t, filepath.Join(dir, devLockFile)))
			if err != nil {
				t.Fatal(err)
			}
			defer syscall.Close(dup)
		}
		release()
	}
}

// lockFd is the descriptor of this process open on path.
func lockFd(t *testing.T, path string) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); target == path {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				t.Fatal(err)
			}
			return fd
		}
	}
	t.Fatalf("no descriptor open on %s", path)
	return -1
}

// An API address that another program holds is refused before anything
// starts, with what to do: dev said "bind: address already in use" once
// it had started the servers, seeded and started every stage.
func TestDevRefusesAnAddressInUse(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Join(t.TempDir(), ".pushpipe")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err = Dev(ctx, DevConfig{Servers: ServerConfig{DataDir: dir}, Bin: pipelinetest.Binary(t), Users: 10, Partitions: 16, Listen: l.Addr().String(), Once: true, Out: io.Discard})
	for _, want := range []string{"the API's address " + l.Addr().String(), "address already in use", "DEV_FLAGS='--listen 127.0.0.1:8081'"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("dev on a taken address: %v; want an error with %q", err, want)
		}
	}
	for _, started := range []string{"redis", "postgres", "logs"} {
		if _, err := os.Lstat(filepath.Join(dir, started)); err == nil {
			t.Errorf("dev made %s/%s: it started before refusing", dir, started)
		}
	}
}
