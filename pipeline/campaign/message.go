package campaign

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Message is a direct message: one notification to listed users, every
// active device of each, each user once; or to listed raw tokens, each once.
// It is stored as a campaign row of kind "message" (one owner for the table,
// and deliver reads its content by id as any campaign's), so message and
// campaign ids share one namespace: a message id that names a campaign is a
// conflict. The row keeps a digest of the users or tokens, not the lists
// (recipientsDigest): only a retry compares them.
//
// A message skips split and resolve: CreateMessage appends its users,
// grouped by partition, to dedupe's stream of its lane, so the dedupe and
// sent marks make it exactly-once per (message, user) as for campaigns. A
// message to raw tokens goes straight to deliver (enqueueTokens).
type Message struct {
	Campaign         // content and Priority (high by default); Channels is always empty
	Users    []int64 // ascending, each once (Normalize)
	Tokens   []Token // or these, each once, in the order given (Normalize)
}

// Kinds of campaign rows.
const (
	KindCampaign = "campaign"
	KindMessage  = "message"
)

// MaxMessageUsers is the most users one message lists.
const MaxMessageUsers = 10_000

// ErrTooManyUsers is a message listing more than MaxMessageUsers users.
var ErrTooManyUsers = errors.New("too many users")

// HashMessageUsers is a field of keys.Campaign(id) for a message: how many
// users (or raw tokens) it lists. Dedupe has read every one of them once its
// "in" counter reaches it (for tokens, enqueueTokens sets "in" itself).
const HashMessageUsers = "message_users"

// Normalize fills the defaults (id, TTL, priority), sorts the users, drops
// repeated users and tokens, and validates every field: a *ValidationError
// naming the field, ErrTooManyUsers or ErrTooManyTokens.
func (m *Message) Normalize() error {
	switch {
	case m.Users != nil && m.Tokens != nil && len(m.Users)+len(m.Tokens) == 0:
		return invalid(`users, tokens: both are empty; give one of them: users [42, 1001] or tokens [{"platform": "ios", "token": "..."}]`)
	case m.Users != nil && m.Tokens != nil: // both given, even if one is empty
		return invalid("users, tokens: a message lists users or raw tokens, not both; send two messages")
	case len(m.Tokens) > 0:
		if err := m.normalizeTokens(); err != nil {
			return err
		}
		return m.normalizeRest()
	case len(m.Users) == 0 && m.Tokens != nil:
		return invalid(`tokens: at least one token is required, e.g. [{"platform": "ios", "token": "..."}]`)
	case len(m.Users) == 0:
		return invalid(`users: at least one user id is required, e.g. [42, 1001]; or "tokens" to send to raw device tokens`)
	}
	if len(m.Users) > MaxMessageUsers {
		return fmt.Errorf("users: at most %d per message, got %d: %w", MaxMessageUsers, len(m.Users), ErrTooManyUsers)
	}
	for i, u := range m.Users {
		if u <= 0 {
			return invalid("users[%d]: user ids are positive, got %d", i, u)
		}
	}
	m.Users = slices.Clone(m.Users)
	slices.Sort(m.Users)
	m.Users = slices.Compact(m.Users)
	return m.normalizeRest()
}

// normalizeRest fills and checks what users and tokens messages share.
func (m *Message) normalizeRest() error {
	if m.Priority == "" {
		m.Priority = pipeline.PriorityHigh
	}
	if _, err := pipeline.LaneOf(m.Priority, pipeline.PriorityHigh); err != nil {
		return &ValidationError{Msg: err.Error()}
	}
	m.Channels = []string{}
	return m.normalizeContent()
}

// CreateMessage stores a message and appends its users to dedupe, with
// Create's idempotency: the same id and content again returns created=false
// and sends nothing new, other content ErrConflict, and a failure after the
// row was written ErrNotQueued (the same request again queues it). Only a
// new id must pass admit (Admit), given the message's Campaign.
func CreateMessage(ctx context.Context, rdb rueidis.Client, db *pgxpool.Pool, keys pipeline.Keys, m Message, admit ...Admit) (Message, bool, error) {
	if err := m.Normalize(); err != nil {
		return m, false, err
	}
	data := []byte(m.Data)
	if len(data) == 0 {
		data = []byte("{}")
	}
	ttl := int64(m.TTL / time.Second)
	tokens := storedTokens(m.Tokens)
	digest := recipientsDigest(m.Users, tokens)
	note := storedNotification(m.Notification)
	same := func() (bool, error) { return sameMessage(ctx, db, &m, data, ttl, note, digest, tokens) }
	queued, err := storedOr(ctx, m.Campaign, admit, same, func() error {
		return db.QueryRow(ctx, `
			INSERT INTO campaigns (id, app, channels, category, title, body, data, ttl_seconds, kind, priority, notification, recipients_digest, raw_tokens)
			VALUES ($1, $2, '{}', $3, $4, $5, $6::jsonb, $7, 'message', $8, $9::jsonb, $10, $11)
			ON CONFLICT (id) DO NOTHING
			RETURNING created_at`,
			m.ID, m.App, m.Category, m.Title, m.Body, data, ttl, m.Priority, note, digest, tokens != nil).Scan(&m.CreatedAt)
	})
	var refusal admitRefusal
	switch {
	case errors.As(err, &refusal):
		return m, false, refusal.err
	case errors.Is(err, ErrOtherKind), errors.Is(err, ErrConflict):
		return m, false, err
	case err != nil:
		if verr := refused(err); verr != nil {
			return m, false, verr
		}
		return m, false, fmt.Errorf("store message %q: %w", m.ID, err)
	case queued:
		return m, false, nil
	}
	created, err := queueMessage(ctx, db, m.ID, func() error { return enqueueMessage(ctx, rdb, keys, m) })
	if err != nil {
		return m, false, fmt.Errorf("%w: %w", ErrNotQueued, err)
	}
	return m, created, nil
}

// queueMessage is queueOnce for a message, without its transaction: the
// row's lock kept requests with the same id at once from appending the
// message twice, and cost four PostgreSQL round trips per message (BEGIN,
// SELECT ... FOR UPDATE, UPDATE, COMMIT) where one does. A message's
// appends are idempotent on their own (appendOnce: each partition's share
// is appended once, whoever tries; the counts before them are HSETs of the
// same values), so racing requests may each run enqueue, and the UPDATE of
// a row not queued yet tells the one that queued it (created) from the rest.
func queueMessage(ctx context.Context, db *pgxpool.Pool, id string, enqueue func() error) (bool, error) {
	if err := enqueue(); err != nil {
		return false, err
	}
	tag, err := db.Exec(ctx, `UPDATE campaigns SET queued_at = now() WHERE id = $1 AND queued_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("mark %q queued: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// sameMessage reads the row that holds m's id: whether it is queued, or
// ErrOtherKind for a campaign's, ErrConflict when its content is not m's.
// The content compared is every stored field, and the recipients by their
// digest; a row written before migration 00014 has no digest but its
// users or tokens, compared as they were then, so a retry across the
// upgrade is still recognised (such rows are purged a day past expiry).
func sameMessage(ctx context.Context, db *pgxpool.Pool, m *Message, data []byte, ttl int64, note, digest []byte, tokens []string) (queued bool, err error) {
	var same bool
	var kind string
	err = db.QueryRow(ctx, `
		SELECT created_at, queued_at IS NOT NULL, kind,
		       (kind, app, category, title, body, data, ttl_seconds, priority, notification) IS NOT DISTINCT FROM
		       ('message', $2, $3, $4, $5, $6::jsonb, $7, $8, $9::jsonb)
		       AND CASE WHEN recipients_digest IS NULL
		                THEN (users, tokens) IS NOT DISTINCT FROM ($11::bigint[], $12::text[])
		                ELSE recipients_digest = $10 END
		FROM campaigns WHERE id = $1`,
		m.ID, m.App, m.Category, m.Title, m.Body, data, ttl, m.Priority, note, digest, m.Users, tokens).Scan(&m.CreatedAt, &queued, &kind, &same)
	switch {
	case err != nil:
		return false, err
	case kind != KindMessage:
		return false, fmt.Errorf("message %q: a campaign has this id: %w", m.ID, ErrOtherKind)
	case !same:
		return false, fmt.Errorf("message %q: %w", m.ID, ErrConflict)
	}
	return queued, nil
}

// WholeMessageUsers is the most users a message may have to go through
// dedupe and deliver as one entry, in the partition of its id: a chat
// message's 49 users spread over every partition would be 16 entries of 3
// users each, and per entry costs (a token query, the mark scripts, the
// ack) would dominate its sends. A larger message is cut by user partition,
// so its sends are shared by every deliverer, as a campaign's are. Either
// way a (message, user) always lands in the same partition, which is all
// exactly-once needs: dedupe's marks are by user id, and so are deliver's
// for a message (deliver's doneIndex).
const WholeMessageUsers = 1000

// enqueueMessage publishes the message's expiry and user count, reads its
// users' mutes of its category, then appends its dedupe entries (one, or one
// per user partition: WholeMessageUsers) to the lane's stream in one
// pipelined call; queueMessage marks the row queued. A retry after a failure
// between the appends and the mark appends only the partitions whose share
// is not in yet (appendOnce): dedupe would forward each user once anyway,
// but count a repeated share in again, and read the message done early.
func enqueueMessage(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, m Message) error {
	exp := m.ExpiresAt().UnixMilli()
	hash := keys.Campaign(m.ID)
	for _, res := range rdb.DoMulti(ctx,
		rdb.B().Hset().Key(hash).FieldValue().FieldValue(HashExpiresMs, strconv.FormatInt(exp, 10)).
			FieldValue(HashMessageUsers, strconv.Itoa(len(m.Users)+len(m.Tokens))).Build(),
		rdb.B().Pexpireat().Key(hash).MillisecondsTimestamp(MessageCountersExpireMs(exp)).Build(),
	) {
		if err := res.Error(); err != nil {
			return fmt.Errorf("queue message %q: %w", m.ID, err)
		}
	}
	if len(m.Tokens) > 0 {
		return enqueueTokens(ctx, rdb, keys, m)
	}
	muted, err := mutedUsers(ctx, rdb, keys, m.Users, m.Category)
	if err != nil {
		return fmt.Errorf("queue message %q: %w", m.ID, err)
	}
	// Users are ascending, so each partition's share stays ascending.
	byPart := map[int]*pipeline.DedupeEntry{}
	var parts []int
	whole := len(m.Users) <= WholeMessageUsers
	for i, u := range m.Users {
		p := keys.UserPartition(u)
		if whole {
			p = keys.HashPartition(m.ID)
		}
		e := byPart[p]
		if e == nil {
			// The expiry rides along: dedupe need not read it back from
			// the hash written above before the message's commit.
			e = &pipeline.DedupeEntry{Campaign: m.ID, Range: pipeline.MessageRange, ExpiresMs: exp}
			byPart[p] = e
			parts = append(parts, p)
		}
		if muted[i] {
			e.Muted = append(e.Muted, u)
		} else {
			e.Users = append(e.Users, u)
		}
	}
	msgs := make([]pipeline.Message, len(parts))
	for i, p := range parts {
		msgs[i] = pipeline.Message{Stream: keys.Stream(m.Lane().Stream(pipeline.StreamDedupe), p), Fields: byPart[p].Fields()}
	}
	if err := appendOnce(ctx, rdb, keys, m.ID, MessageCountersExpireMs(exp), parts, msgs); err != nil {
		return fmt.Errorf("queue message %q: %w", m.ID, err)
	}
	return nil
}

// mutedUsers tells, per user, whether they muted the category ("" mutes
// nobody): one pipelined HGET per user.
func mutedUsers(ctx context.Context, rdb rueidis.Client, keys pipeline.Keys, users []int64, category string) ([]bool, error) {
	out := make([]bool, len(users))
	if category == "" {
		return out, nil
	}
	cmds := make(rueidis.Commands, len(users))
	field := pipeline.PrefCategory(category)
	for i, u := range users {
		cmds[i] = rdb.B().Hget().Key(keys.Preferences(u)).Field(field).Build()
	}
	for i, res := range rdb.DoMulti(ctx, cmds...) {
		v, err := res.ToString()
		switch {
		case rueidis.IsRedisNil(err):
		case err != nil:
			return nil, fmt.Errorf("mutes of user %d: %w", users[i], err)
		default:
			out[i] = v == "1"
		}
	}
	return out, nil
}
