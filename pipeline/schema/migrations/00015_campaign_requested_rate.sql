-- +goose Up
-- The rate_per_second a campaign was created with, kept by the first
-- change of its rate (pipeline/campaign SetRate: PATCH /v1/campaigns/{id},
-- pushpipe campaigns rate): a retry of the original POST is compared with
-- it, not with the rate an operator set since, which answered the client's
-- own request a 409. NULL: the rate never changed (rate_per_second is the
-- one requested), so Create's INSERT does not name it and the API of the
-- previous release runs on this schema unchanged. Nullable without a
-- default: no table rewrite, a brief lock only.
ALTER TABLE campaigns ADD COLUMN requested_rate integer;

-- +goose Down
ALTER TABLE campaigns DROP COLUMN requested_rate;
