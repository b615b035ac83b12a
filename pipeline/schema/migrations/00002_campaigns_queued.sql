-- +goose Up
-- A campaign row is written before its entry is appended to the campaigns
-- stream; queued_at is set once the entry is there. A Create that finds the
-- row with queued_at NULL (the previous attempt died in between) queues it,
-- so retrying a failed request never leaves a campaign that never starts.
ALTER TABLE campaigns ADD COLUMN queued_at timestamptz;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN queued_at;
