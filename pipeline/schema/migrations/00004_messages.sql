-- +goose Up
-- A direct message is a campaign row of kind 'message' (pipeline/campaign
-- Message): deliver reads its content as any campaign's, by id. users is the
-- listed users (ascending, each once) and priority its lane, both part of
-- what an idempotent retry must repeat.
ALTER TABLE campaigns
    ADD COLUMN kind text NOT NULL DEFAULT 'campaign',
    ADD COLUMN users bigint[],
    ADD COLUMN priority text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE campaigns DROP COLUMN kind, DROP COLUMN users, DROP COLUMN priority;
