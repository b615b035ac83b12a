// Package pipeline is the runtime every pushpipe stage shares; read it first.
//
// pushpipe is five stages on Redis Streams (ingest, split, resolve, dedupe,
// deliver), each a consumer group on its own logical stream, each a process
// that can be scaled, killed and restarted without losing or duplicating
// work. This package holds what they have in common:
//
//   - The stage table (stages.go): each stage declared once, with its input
//     stream and defaults. Subcommands, `pushpipe all`, status, replay, the
//     DLQ tools and the benchmark derive from it.
//   - Keys (keys.go): the one place that knows Redis key names. Every logical
//     stream is split into P partitions, each under its own hash tag {p<n>},
//     and everything one step touches atomically shares that tag, so the same
//     Lua scripts run on a Redis Cluster.
//   - The runner (runner.go, commit.go, heartbeat.go, claim.go): reads
//     batches with XREADGROUP, hands them to a Handler, makes what the handler
//     recorded on the Batch durable (emits, counters) and acks in one commit;
//     keeps a batch in progress claimed and tells the handler when it is no
//     longer its own (Batch.Lost); takes over idle entries of dead consumers
//     with XAUTOCLAIM; dead-letters entries delivered too often (dlq.go).
//     Handler (batch.go) is the one-method contract a stage implements.
//   - Trimming (trim.go, bound.go): nothing is trimmed before every group
//     acknowledged it and the retention window passed. Backpressure
//     (backpressure.go) slows producers when a downstream group lags.
//   - Operator tools over the same streams: Replay (replay.go), Status
//     (status.go), the DLQ (dlq.go).
//   - Process plumbing: the Redis client (redis.go), logs, metrics and the ops
//     HTTP server (/metrics, /healthz, /readyz).
//
// Stage packages live in stages/; cmd/pushpipe wires flags to them; the
// test bed that starts real redis-server and PostgreSQL is pipelinetest.
package pipeline
