// Package drills holds the outage drills of DESIGN's guarantees, as tests:
// the whole pipeline runs as separate `pushpipe` processes (built from
// ./cmd/pushpipe in TestMain) against real Redis and PostgreSQL servers and
// the fake provider, and each drill breaks one thing mid-campaign:
//
//	(a) Redis SIGKILLed, restarted from its AOF (appendfsync everysec)
//	(b) PostgreSQL stopped and started again
//	(c) the provider down past deliver's retry budget, then `pushpipe dlq retry`
//	(d) `pushpipe replay` of a delivered window, without and with --force
//	(e) a campaign's entry lost by Redis, then `pushpipe replay --resplit`
//	(f) Redis losing everything mid-campaign, then `pushpipe replay --resplit`
//	(g) a Redis Cluster master SIGKILLed, its replica promoted, then `replay --resplit`
//	(h) a partition's slot migrated to another master mid-campaign (resharding)
//
// and counts the provider's receipts (the upgrade drill, `make upgrade-drill`,
// replaces each process of an older release by this tree's mid-campaign): everyone reached, and nobody twice
// beyond what the drill's fault allows. The package has no code of its own.
package drills
