package pipeline

import (
	"fmt"
	"strconv"
)

// Stream names. Every logical stream is split into Keys.Partitions keys, one per
// hash tag {p<n>}, so that a partition's stream, its dedupe marks and its sent
// marks live in one cluster slot and a single Lua script may touch them all.
const (
	StreamIngest    = "ingest"
	StreamCampaigns = "campaigns"
	StreamRanges    = "ranges"
	StreamDedupe    = "dedupe"
	StreamDeliver   = "deliver"
	StreamResults   = "results"
	StreamDLQ       = "dlq"
)

// DefaultPartitions is DESIGN's default P.
const DefaultPartitions = 16

// MaxPartitions is the most partitions a deployment may have. Every stage
// process reads each partition of its streams with a blocking read of its
// own (a goroutine and a Redis connection, two with the express lane), and
// status lists each partition's key of every stream: `--partitions
// 100000000 status` grew past 17 GB before it read a key, and recorded that
// count as the layout of a fresh Redis, which every process then had to be
// started with. 1024 is 4 a master (deploy/README) on 256 masters.
const MaxPartitions = 1024

// DefaultBucket keeps this many neighbouring user ids in one partition, so a
// range of subscribers maps to few partitions and batches stay large.
const DefaultBucket = 1024

// Keys is the one place that knows every Redis key name. The prefix lets tests
// (and several deployments) share one Redis.
type Keys struct {
	Prefix     string // default "pp"
	Partitions int    // P, default 16
	Bucket     int64  // user ids per bucket, default 1024
}

// NewKeys returns the key scheme with defaults filled in.
func NewKeys(prefix string, partitions int) Keys {
	if prefix == "" {
		prefix = "pp"
	}
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return Keys{Prefix: prefix, Partitions: partitions, Bucket: DefaultBucket}
}

// Tag is the hash tag of partition p, e.g. "{p7}".
func (k Keys) Tag(p int) string { return "{p" + strconv.Itoa(p) + "}" }

// Stream is the key of partition p of a logical stream: "pp:{p7}:deliver".
func (k Keys) Stream(name string, p int) string {
	return k.Prefix + ":" + k.Tag(p) + ":" + name
}

// Streams lists every partition key of a logical stream.
func (k Keys) Streams(name string) []string {
	out := make([]string, k.Partitions)
	for p := range out {
		out[p] = k.Stream(name, p)
	}
	return out
}

// DLQ is the dead-letter stream. It has one key: dead letters are rare and an
// operator wants them in one place.
func (k Keys) DLQ() string { return k.Prefix + ":{dlq}:" + StreamDLQ }

// DLQClaim is the claim a retry holds on dead letter id while it re-injects
// it, under the DLQ's tag (claimLetters): two retries at once re-inject it
// once.
func (k Keys) DLQClaim(id string) string { return k.Prefix + ":{dlq}:retrying:" + id }

// ConsoleSession is the operator console's session whose id hashes to hash
// (stages/api/console): a string holding its CSRF token, expiring with the
// session.
func (k Keys) ConsoleSession(hash string) string { return k.Prefix + ":{console}:session:" + hash }

// DelayedKey is the sorted set of entries waiting to be XADDed to stream (a
// partition key from Stream) at a later time (delay.go): it shares the
// stream's hash tag, so releasing an entry is one atomic step.
func DelayedKey(stream string) string { return stream + ":delayed" }

// ForcedSent is the hash of the devices that the rounds of one forced
// deliver entry (pipeline.FieldForce, FieldForceDevices), id of stream (a
// partition key from Stream), got a terminal answer for, fields and values
// as a message's sent marks (MessageMarkBits). A forced round sends to
// marked devices, so after a crash only this tells its redelivery which of
// them the round sent already. It shares the stream's hash tag, so it is
// written in the same call as the devices' sent marks.
func (k Keys) ForcedSent(stream, id string) string { return stream + ":forced:" + id }

// Replayed is the hash of partition p's entries a forced replay
// re-injected, and of the copies it wrote (fields "stream/id"): a second
// forced replay of the same window, run at once by another operator or
// again later, skips them instead of sending their users again
// (pipeline/replay_forced.go). The partition's tag: written in the same
// script as the copies' XADDs.
func (k Keys) Replayed(p int) string { return k.Prefix + ":" + k.Tag(p) + ":replayed" }

// errorsKey is the hash of the last handler error of the entries of stream
// left pending (Runner.noteErrors), by entry id: for the dead letter's
// reason, whoever writes it. It shares the stream's hash tag.
func errorsKey(stream string) string { return stream + ":errors" }

// Seen is the dedupe hash of a campaign in partition p: the users whose
// first sighting went to deliver (stages/dedupe/script.go has its layout).
func (k Keys) Seen(p int, campaign string) string {
	return k.Prefix + ":" + k.Tag(p) + ":seen:" + campaign
}

// Muted is the dedupe hash of a campaign in partition p holding the users
// seen only as muted so far (Seen's layout and hash tag).
func (k Keys) Muted(p int, campaign string) string {
	return k.Prefix + ":" + k.Tag(p) + ":seen:" + campaign + ":muted"
}

// MarkChunkBits sizes deliver's bitmaps: a campaign's sent marks (a bit per
// device id) and done users (a bit per user offset, UserOffset) are kept in
// chunks of 2^MarkChunkBits bits, one key each, so a chunk is at most 8 KB.
const MarkChunkBits = 16

// SentChunk is the key of chunk (id >> MarkChunkBits) of a campaign's sent
// marks in partition p: a bit per device that reached a terminal state.
func (k Keys) SentChunk(p int, campaign string, chunk int64) string {
	return k.Prefix + ":" + k.Tag(p) + ":sent:" + campaign + ":" + strconv.FormatInt(chunk, 10)
}

// DoneChunk is the key of a chunk of a campaign's done users in partition
// p: a bit per user (by UserOffset) counted terminal.
func (k Keys) DoneChunk(p int, campaign string, chunk int64) string {
	return k.Prefix + ":" + k.Tag(p) + ":done:" + campaign + ":" + strconv.FormatInt(chunk, 10)
}

// MessageMarkBits sizes a direct message's marks, which are not bitmap
// keys: a message reaches a few scattered users and devices (ids spread over
// the whole registry), and a bitmap chunk padded up to each id's bit would
// cost kilobytes per device. Its sent marks and done users (a bit per user
// id) are fields of one hash per partition (SentMarks, DoneMarks): field
// id >> MessageMarkBits, value the chunk's bytes up to the highest bit set
// (at most 32), a few dozen bytes per device.
const MessageMarkBits = 8

// SentMarks is the hash of a message's sent marks in partition p (see
// MessageMarkBits).
func (k Keys) SentMarks(p int, message string) string {
	return k.Prefix + ":" + k.Tag(p) + ":sent:" + message
}

// DoneMarks is the hash of a message's done users in partition p (see
// MessageMarkBits).
func (k Keys) DoneMarks(p int, message string) string {
	return k.Prefix + ":" + k.Tag(p) + ":done:" + message
}

// Settled is a campaign's set, in partition p, of the devices counted failed
// after their user's last retry (deliver's settledScript).
func (k Keys) Settled(p int, campaign string) string {
	return k.Prefix + ":" + k.Tag(p) + ":settled:" + campaign
}

// Stats is a campaign's counter hash in partition p. Stages update it in the
// same atomic script that acks their input, so counts never drift on
// redelivery; readers sum it over the partitions.
func (k Keys) Stats(p int, campaign string) string {
	return k.Prefix + ":" + k.Tag(p) + ":stats:" + campaign
}

// Reasons is a campaign's hash, in partition p, of why its devices ended
// failed or invalid: field the reason (the provider's, or deliver's own such
// as "no credentials"), value how many devices. deliver counts a device in
// the same script that marks it, once; readers sum it over the partitions
// (campaign.Reasons).
func (k Keys) Reasons(p int, campaign string) string {
	return k.Prefix + ":" + k.Tag(p) + ":reasons:" + campaign
}

// Campaign is the hash of a campaign's progress counters.
func (k Keys) Campaign(id string) string { return k.Prefix + ":{c" + id + "}:campaign" }

// Canceled is a campaign's cancel flag: set by campaign.Cancel, checked by
// every stage before it works for the campaign (the campaign's tag).
func (k Keys) Canceled(id string) string { return k.Prefix + ":{c" + id + "}:canceled" }

// RangeUsers is a campaign's hash mapping each resolved range to its last
// reading by resolve (RangeRecord: how many user ids, under which tag), the
// campaign's tag.
func (k Keys) RangeUsers(id string) string { return k.Prefix + ":{c" + id + "}:range_users" }

// SplitCheckpoint is split's checkpoint of a campaign: per channel, where to
// continue, so a redelivered or requeued campaign resumes instead of
// starting over (the campaign's tag).
func (k Keys) SplitCheckpoint(id string) string { return k.Prefix + ":{c" + id + "}:split" }

// Preferences is the hash holding a user's muted channels and categories.
// Users are spread over the partitions' tags so a batch of lookups groups by slot.
func (k Keys) Preferences(userID int64) string {
	return k.Prefix + ":" + k.Tag(k.UserPartition(userID)) + ":prefs:" + strconv.FormatInt(userID, 10)
}

// RateLimit is the key of a cluster-wide send-rate window for a provider+app.
func (k Keys) RateLimit(provider, app string) string {
	return k.Prefix + ":{rl:" + provider + ":" + app + "}:window"
}

// RateCap is the key of a cluster-wide cap on events per second shared by
// every process of a stage (RateCap in ratecap.go): the webhook's --rate.
func (k Keys) RateCap(name string) string { return k.Prefix + ":{cap:" + name + "}:window" }

// UserPartition is DESIGN's p = (user_id / bucket) mod P.
func (k Keys) UserPartition(userID int64) int {
	b, u := k.bucketOf(userID)
	return int((u / b) % int64(k.Partitions))
}

// UserOffset is a user's index among the ids of its partition: user ids of
// one partition come in buckets every Partitions buckets, and this packs them
// together, so a per-partition bitmap over user ids (deliver's done users)
// has no gaps between its partition's buckets.
func (k Keys) UserOffset(userID int64) int64 {
	b, u := k.bucketOf(userID)
	return u/(b*int64(k.Partitions))*b + u%b
}

// bucketOf is the bucket size (DefaultBucket when unset) and the id the
// user mapping works on (its absolute value).
func (k Keys) bucketOf(userID int64) (bucket, id int64) {
	bucket = k.Bucket
	if bucket <= 0 {
		bucket = DefaultBucket
	}
	return bucket, max(userID, -userID)
}

// HashPartition spreads entries without a user (tokens, ranges, campaigns) over
// the partitions by a stable hash of their key (32-bit FNV-1a).
func (k Keys) HashPartition(key string) int {
	return int(fnv1a(fnvOffset, key) % uint32(k.Partitions))
}

// HashPartition2 is HashPartition(a + "/" + b) without building the string:
// the API computes it for every device write.
func (k Keys) HashPartition2(a, b string) int {
	h := fnv1a(fnvOffset, a)
	h = (h ^ '/') * fnvPrime
	return int(fnv1a(h, b) % uint32(k.Partitions))
}

const (
	fnvOffset = 2166136261
	fnvPrime  = 16777619
)

// fnv1a folds s into the FNV-1a hash h (hash/fnv's New32a, without its
// allocation).
func fnv1a(h uint32, s string) uint32 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * fnvPrime
	}
	return h
}

// ParseStream splits a partition key back into its logical name and partition.
func (k Keys) ParseStream(key string) (name string, p int, err error) {
	var rest string
	pre := k.Prefix + ":{p"
	if len(key) <= len(pre) || key[:len(pre)] != pre {
		return "", 0, fmt.Errorf("key %q is not a %s partition stream", key, k.Prefix)
	}
	rest = key[len(pre):]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '}' {
			p, err = strconv.Atoi(rest[:i])
			if err != nil || i+2 > len(rest) {
				return "", 0, fmt.Errorf("key %q: bad partition", key)
			}
			return rest[i+2:], p, nil
		}
	}
	return "", 0, fmt.Errorf("key %q: no partition tag", key)
}

// Layout is the deployment's recorded partition count and bucket size
// (CheckLayout), under its prefix.
func (k Keys) Layout() string { return k.Prefix + ":{meta}:layout" }

// Alive is the liveness hash of a consumer group's processes (alive.go):
// consumer → its last beat. Under {meta}: a handful of small hashes, read
// together by status.
func (k Keys) Alive(group string) string { return k.Prefix + ":{meta}:alive:" + group }

// Retired is the hash of the consumer groups `pushpipe results retire`
// removed: group → unix ms. A process of such a group still running finds
// its group gone and must not recreate it (Runner.recreate); a process
// starting later creates it anew, and clears its line.
func (k Keys) Retired() string { return k.Prefix + ":{meta}:retired" }

// ReceiverFailing is the hash of the webhook receivers failing now: group
// → "<since unix ms>,<failed deliveries>,<last error>", written by the
// webhook stage when its receiver starts failing and as it goes on, and
// deleted when the receiver accepts again, so that status says what the
// stage's log says.
func (k Keys) ReceiverFailing() string { return k.Prefix + ":{meta}:receiver-failing" }

// WebhookPause is the pause a webhook group's receiver asked for (a
// Retry-After, or a 429 or 503's backoff): a string whose TTL is what is
// left of it, Redis's clock deciding when it ends. The process answered
// extends it, never shortens it, and every process of the group reads it
// before each POST, so the receiver's choice holds for all its replicas
// (stages/webhook/pause.go). Under {meta}, beside ReceiverFailing: status
// reads both.
func (k Keys) WebhookPause(group string) string { return k.Prefix + ":{meta}:webhook-pause:" + group }

// Busy is the hash of the batches a consumer group's processes have held
// longest (stuck.go): consumer → its oldest batch in hand, written with
// each beat. Under {meta}, beside Alive: one script writes both.
func (k Keys) Busy(group string) string { return k.Prefix + ":{meta}:busy:" + group }

// Moved is the hash of when a consumer group's processes last moved work
// (moved.go): consumer → "<moved ms>,<beat ms>" (aliveScript), written
// with each beat. Under {meta}, beside Alive: one script writes both.
// Processes older than it write nothing here (Motion.Unreported).
func (k Keys) Moved(group string) string { return k.Prefix + ":{meta}:moved:" + group }

// Layouts is the one key shared by every prefix on a Redis: a hash of
// prefix → layout, so a command with a wrong prefix can list the right ones.
func (k Keys) Layouts() string { return "pushpipe:{meta}:layouts" }

// PrefsLoaded is partition p's marker that its users' preferences were
// copied from PostgreSQL (pipeline/prefs): gone with the data when Redis
// loses it, which tells readers to load them again.
func (k Keys) PrefsLoaded(p int) string { return k.Prefix + ":" + k.Tag(p) + ":prefs_loaded" }
