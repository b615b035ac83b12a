-- +goose Up
-- A direct message to raw tokens (pipeline/campaign Message.Tokens) keeps
-- them, as "platform token" in the order that numbers them (each once), so
-- an idempotent retry is recognised and a different list is a conflict.
ALTER TABLE campaigns ADD COLUMN tokens text[];

-- +goose Down
ALTER TABLE campaigns DROP COLUMN tokens;
