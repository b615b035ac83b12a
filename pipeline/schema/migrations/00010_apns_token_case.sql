-- +goose Up
-- APNs tokens are hex and case-insensitive: a phone registered as "AB12…"
-- and as "ab12…" was two devices and got every notification twice. Tokens
-- are stored lowercase from now on (devices.CanonicalToken); of stored rows
-- that differ only in case, the one of the latest event stays (its owner,
-- state and id), then every APNs token is lowered: platform 1, or a
-- tombstone of unknown platform (0) whose token is one.
WITH mixed AS (
    SELECT app, token FROM devices
    WHERE (platform = 1 OR platform = 0 AND token ~ '^[0-9A-Fa-f]{64,200}$') AND token <> lower(token)
), twins AS (
    SELECT d.app, d.token, d.event_at FROM devices d JOIN mixed m ON d.app = m.app AND d.token = m.token
    UNION
    SELECT d.app, d.token, d.event_at FROM devices d JOIN mixed m ON d.app = m.app AND d.token = lower(m.token)
), ranked AS (
    SELECT app, token, row_number() OVER (PARTITION BY app, lower(token) ORDER BY event_at DESC, token) AS n FROM twins
)
DELETE FROM devices d USING ranked r WHERE d.app = r.app AND d.token = r.token AND r.n > 1;
UPDATE devices SET token = lower(token)
WHERE (platform = 1 OR platform = 0 AND token ~ '^[0-9A-Fa-f]{64,200}$') AND token <> lower(token);

-- +goose Down
-- Nothing to undo: lowercase APNs tokens are what APNs takes.
SELECT 1;
