-- +goose Up
-- A direct message's row keeps a digest of its users or raw tokens
-- (pipeline/campaign recipientsDigest) instead of the lists: only an
-- idempotent retry compares them, and a chat message's 50 ids were most of
-- its row. raw_tokens keeps what the lists told the progress readers (its
-- targets are tokens, not people). Both nullable without a default: no
-- table rewrite, a brief lock only. Rows written before keep users or
-- tokens (digest NULL), compared as before until the purge takes them.
ALTER TABLE campaigns
    ADD COLUMN recipients_digest bytea,
    ADD COLUMN raw_tokens boolean;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN recipients_digest, DROP COLUMN raw_tokens;
