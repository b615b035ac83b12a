-- +goose Up
-- A direct message is a campaign row of kind 'message' (pipeline/campaign
-- Message): deliver reads its content as any campaign's, by id. users is the
-- listed users (ascending, each once), part of what an idempotent retry must
-- repeat; its lane is the priority column.
ALTER TABLE campaigns
    ADD COLUMN kind text NOT NULL DEFAULT 'campaign',
    ADD COLUMN users bigint[];

-- +goose Down
ALTER TABLE campaigns DROP COLUMN kind, DROP COLUMN users;
