package campaign

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	iosA = strings.Repeat("ab", 32)
	iosB = strings.Repeat("cd", 32)
)

// chat is a message to users or raw tokens, as the API would give it.
func chat(id string, users []int64, tokens ...string) Message {
	m := Message{Campaign: Campaign{ID: id, App: "chat", Title: "Room 7", Body: "hi", Data: []byte(`{"room":"7"}`), TTL: time.Hour}, Users: users}
	for _, t := range tokens {
		m.Tokens = append(m.Tokens, Token{Platform: "ios", Token: t})
	}
	return m
}

// A message's row keeps a digest of its users or tokens, not the lists
// (a chat message's 50 ids were most of its row), and still tells the
// progress readers whether its targets are tokens.
func TestMessageRowKeepsADigest(t *testing.T) {
	rdb, db, keys := world(t)
	tests := []struct {
		name string
		give Message
		raw  bool
	}{
		{"users", chat("m-users", []int64{3, 1, 2}), false},
		{"tokens", chat("m-tokens", nil, iosA, iosB), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := CreateMessage(t.Context(), rdb, db, keys, tt.give); err != nil {
				t.Fatal(err)
			}
			var lists bool
			var digest int
			var raw bool
			if err := db.QueryRow(t.Context(), `SELECT users IS NOT NULL OR tokens IS NOT NULL, coalesce(octet_length(recipients_digest), 0), coalesce(raw_tokens, false)
				FROM campaigns WHERE id = $1`, tt.give.ID).Scan(&lists, &digest, &raw); err != nil {
				t.Fatal(err)
			}
			if lists || digest != 32 || raw != tt.raw {
				t.Errorf("row keeps lists %v, a digest of %d bytes, raw_tokens %v; want no lists, 32 bytes, %v", lists, digest, raw, tt.raw)
			}
			rep, err := MessageProgress(t.Context(), rdb, db, keys, tt.give.ID)
			if err != nil || rep.RawTokens != tt.raw {
				t.Errorf("progress says raw tokens %v (%v), want %v", rep.RawTokens, err, tt.raw)
			}
			// No dedupe runs here: every listed user is still to be
			// counted, and the progress says how many (not "0 / 0"); raw
			// tokens are their targets from the start.
			if users, tokens := int64(len(tt.give.Users)), int64(len(tt.give.Tokens)); rep.Counting != users || rep.Targets != tokens {
				t.Errorf("before dedupe read it: counting %d, targets %d; want %d and %d", rep.Counting, rep.Targets, users, tokens)
			}
		})
	}
}

// A retry across the upgrade to migration 00014: a row written before it
// keeps its users or tokens and no digest, and the same request again is
// still recognised (not a 409), other recipients still a conflict, and the
// progress readers still see its raw tokens.
func TestMessageRetryOfARowWithoutDigest(t *testing.T) {
	rdb, db, keys := world(t)
	tests := []struct {
		name  string
		first Message
		again Message
		want  error
	}{
		{"same users", chat("u1", []int64{1, 2, 3}), chat("u1", []int64{3, 2, 1, 1}), nil},
		{"other users", chat("u2", []int64{1, 2, 3}), chat("u2", []int64{1, 2}), ErrConflict},
		{"tokens instead of users", chat("u3", []int64{1}), chat("u3", nil, iosA), ErrConflict},
		{"same tokens", chat("t1", nil, iosA, iosB), chat("t1", nil, iosA, strings.ToUpper(iosB)), nil},
		{"tokens in another order", chat("t2", nil, iosA, iosB), chat("t2", nil, iosB, iosA), ErrConflict},
		{"users instead of tokens", chat("t3", nil, iosA), chat("t3", []int64{1}), ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.first
			if err := first.Normalize(); err != nil {
				t.Fatal(err)
			}
			if _, _, err := CreateMessage(t.Context(), rdb, db, keys, tt.first); err != nil {
				t.Fatal(err)
			}
			// The row as the release before 00014 wrote it.
			if _, err := db.Exec(t.Context(), `UPDATE campaigns SET users = $2, tokens = $3, recipients_digest = NULL, raw_tokens = NULL WHERE id = $1`,
				first.ID, first.Users, storedTokens(first.Tokens)); err != nil {
				t.Fatal(err)
			}
			_, created, err := CreateMessage(t.Context(), rdb, db, keys, tt.again)
			if created || !errors.Is(err, tt.want) {
				t.Errorf("again: created %v, %v; want not created, %v", created, err, tt.want)
			}
			rep, err := MessageProgress(t.Context(), rdb, db, keys, first.ID)
			if raw := first.Tokens != nil; err != nil || rep.RawTokens != raw {
				t.Errorf("progress says raw tokens %v (%v), want %v", rep.RawTokens, err, raw)
			}
		})
	}
}

// A message's same-id retry rules hold after everything that may touch its
// row: a rate change and a cancel (both refused: a message has neither),
// and its sending being over (state, finished_at and counts recorded).
// The same request again is not created again; other recipients are still
// a conflict.
func TestMessageRetryAfterItMoved(t *testing.T) {
	rdb, db, keys := world(t)
	tests := []struct {
		name         string
		first, other Message
	}{
		{"users", chat("moved-users", []int64{1, 2, 3}), chat("moved-users", []int64{1, 2})},
		{"tokens", chat("moved-tokens", nil, iosA, iosB), chat("moved-tokens", nil, iosA)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if _, created, err := CreateMessage(ctx, rdb, db, keys, tt.first); err != nil || !created {
				t.Fatalf("create: %v, %v", created, err)
			}
			if _, err := SetRate(ctx, rdb, db, keys, tt.first.ID, 5); !errors.Is(err, ErrIsMessage) {
				t.Errorf("SetRate of a message: %v, want ErrIsMessage", err)
			}
			if _, err := Cancel(ctx, rdb, db, keys, tt.first.ID); err == nil {
				t.Error("Cancel of a message: no error")
			}
			if _, err := db.Exec(ctx, `UPDATE campaigns SET state = 'done', finished_at = now(), counts = '{"sent":3}' WHERE id = $1`, tt.first.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := MessageProgress(ctx, rdb, db, keys, tt.first.ID); err != nil {
				t.Fatal(err)
			}
			if _, created, err := CreateMessage(ctx, rdb, db, keys, tt.first); err != nil || created {
				t.Errorf("the same again: created %v, %v; want not created, no error", created, err)
			}
			if _, created, err := CreateMessage(ctx, rdb, db, keys, tt.other); created || !errors.Is(err, ErrConflict) {
				t.Errorf("other recipients: created %v, %v; want ErrConflict", created, err)
			}
		})
	}
}
