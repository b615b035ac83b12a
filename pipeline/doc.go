// Package pipeline is the runtime every pushpipe stage shares; read it first.
//
// pushpipe is five stages on Redis Streams (ingest, split, resolve, dedupe,
// deliver), each a consumer group on its own logical stream, each a process
// that can be scaled, killed and restarted without losing or duplicating
// work. This package holds what they have in common:
//
//   - The stage table (stages.go): each stage declared once, with its input
//     stream and defaults. Subcommands, `pushpipe all`, status, replay, the
//     DLQ tools, the benchmark and the deploy manifests derive from it. A new
//     stage is its row, its package, and one line in cmd/pushpipe's registry
//     (registry.go; a stage with flags of its own adds their file beside
//     it); tests fail until they agree.
//   - Keys (keys.go): the one place that knows Redis key names. Every logical
//     stream is split into P partitions, each under its own hash tag {p<n>},
//     and everything one step touches atomically shares that tag, so the same
//     Lua scripts run on a Redis Cluster.
//   - The runner (runner.go: its options in options.go, joining groups in
//     join.go, reading in read.go, handing batches to handlers in queues.go
//     and process.go; commit.go, heartbeat.go, claim.go): the only code that
//     reads, writes, acks or claims a stream entry. It reads
//     batches with XREADGROUP, hands them to a Handler, makes what the handler
//     recorded on the Batch durable and acks in one commit: emits (Emit),
//     delayed emits (EmitAt: a sorted set beside each stream that the runner
//     releases when due, delay.go; deliver's retries and scheduled
//     campaigns), counters (Incr), dead letters (DeadLetter, DeadLetterPart),
//     or the handler's own Lua run inside the commit (Commit, commitscript.go:
//     dedupe's marks). It keeps a batch in progress claimed and tells the
//     handler when it is no longer its own (Batch.Lost) or the process is
//     stopping (Batch.Stopping); takes over idle entries of dead consumers
//     with XAUTOCLAIM; dead-letters entries delivered too often (claim.go,
//     commit.go).
//     Handler (batch.go) is the one-method contract a stage implements.
//   - Lanes (lanes.go): a row with Express (dedupe, deliver) also reads an
//     express stream per partition (dedupe-express, deliver-express) with
//     read loops and handlers of its own, so a message (priority "high")
//     never waits behind a bulk campaign's batches; Batch.Lane tells a
//     handler which lane to emit into (dedupe) or to reserve for (deliver).
//     Claims, trims, delayed entries, status, replay and the DLQ cover both.
//   - Entry codecs (entries.go, devices.Event): one type per stream's entries,
//     used by the stage that writes them and the one that reads them.
//   - Trimming (trim.go, bound.go): nothing is trimmed before every group
//     acknowledged it and the retention window passed. Backpressure
//     (backpressure.go) slows producers when a downstream group lags.
//   - Operator tools over the same streams: Replay (replay.go), Status
//     (status.go), the DLQ (dlq.go: list, show, drop; dlqretry.go;
//     dlqfields.go: how a letter keeps its entry's fields).
//   - Process plumbing: the Redis client (redis.go), logs, metrics and the ops
//     HTTP server (/metrics, /healthz, /readyz).
//
// The shared models are pipeline/campaign (the one owner of the campaigns
// table and of the campaign counters' reading) and pipeline/devices (the
// devices table and the ingest event). Stage packages live in stages/;
// cmd/pushpipe wires flags to them; the test bed that starts real
// redis-server and PostgreSQL is pipelinetest (tests only).
package pipeline
