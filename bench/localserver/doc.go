// Package localserver starts real redis-server, Redis Cluster and
// PostgreSQL processes on this machine: for `pushpipe dev`, the benchmark
// and (through pipeline/pipelinetest) the tests. It does not import
// "testing", so the pushpipe binary can link it.
//
// Every server runs as a child process of the caller (never daemonized):
// PID 1 on the target machines does not reap orphans, so a daemon that we
// do not wait on would linger as a zombie. Each server gets its own free
// port and its own temporary directory, so several test binaries can run
// in parallel (`go test ./...`).
//
// The types are not safe for concurrent use: start, kill, restart and
// close a server from one goroutine.
package localserver
