// Package pipelinetest is the test bed: real redis-server, Redis Cluster and
// PostgreSQL for tests (started by bench/localserver, which the pushpipe
// binary also uses), with testing.TB conveniences that close them at
// cleanup, and a build of the pushpipe binary for tests that SIGKILL it.
// Production code never imports it: it imports "testing".
package pipelinetest
