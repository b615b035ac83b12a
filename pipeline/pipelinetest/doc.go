// Package pipelinetest starts real redis-server, Redis Cluster and
// PostgreSQL processes for tests, benchmarks and the bench harness.
//
// Every server runs as a child process of the caller (never daemonized):
// PID 1 on the target machines does not reap orphans, so a daemon that we
// do not wait on would linger as a zombie. Each server gets its own free
// port and its own temporary directory, so several test binaries can run
// in parallel (`go test ./...`).
//
// The main files do not import "testing", so a non-test binary can use the
// package; the testing.TB conveniences live in tb.go.
//
// The types are not safe for concurrent use: start, kill, restart and
// close a server from one goroutine.
package pipelinetest
