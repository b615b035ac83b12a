// Package fanout tests split, resolve and dedupe together, in process,
// against real Redis and PostgreSQL: a campaign fans out to exactly one
// deliver entry per subscriber, also when a stage is killed mid-way. It holds
// tests and benchmarks only; the stages are tested one by one in their own
// packages.
package fanout
