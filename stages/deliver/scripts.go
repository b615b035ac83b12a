package deliver

import (
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Every script below touches keys of one partition's hash tag {p<n>} only:
// the deliver stream, its retry set, and the campaign's sent marks and
// counters in that partition. So each is atomic on a cluster too.

// markScript records devices that reached a terminal state for a campaign
// (sent, invalid or failed) and counts each one the first time only: a
// redelivered entry skips marked devices, and a mark repeated after a crash
// counts nothing. A device counted failed when its user ran out of retries
// (settledScript) and marked now, after a DLQ retry, moves out of failed;
// only then (the partition has failures at all) is it checked one by one,
// otherwise the marks go in with one SADD per chunk and one HINCRBY per
// counter.
//
// KEYS[1] sent marks (set), KEYS[2] stats (hash), KEYS[3] settled set.
// ARGV[1] marks TTL seconds, ARGV[2] now unix ms, then per counter:
// counter, n, n members.
var markScript = rueidis.NewLuaScript(`
local failedBefore = tonumber(redis.call('HGET', KEYS[2], '` + pipeline.StatFailed + `')) or 0
local sent, new = false, 0
local i = 3
while i <= #ARGV do
  local counter, first, last = ARGV[i], i + 2, i + 1 + tonumber(ARGV[i + 1])
  i = last + 1
  local added = 0
  if failedBefore > 0 then
    local unfailed = 0
    for j = first, last do
      if redis.call('SADD', KEYS[1], ARGV[j]) == 1 then
        added = added + 1
        if redis.call('SREM', KEYS[3], 'f' .. ARGV[j]) == 1 then unfailed = unfailed + 1 end
      end
    end
    if unfailed > 0 then redis.call('HINCRBY', KEYS[2], '` + pipeline.StatFailed + `', -unfailed) end
  else
    for j = first, last, 512 do
      added = added + redis.call('SADD', KEYS[1], unpack(ARGV, j, math.min(j + 511, last)))
    end
  end
  if added > 0 then
    redis.call('HINCRBY', KEYS[2], counter, added)
    new = new + added
    if counter == 'sent' then sent = true end
  end
end
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if sent then
  local now = tonumber(ARGV[2])
  local first = tonumber(redis.call('HGET', KEYS[2], 'first_ms'))
  if not first or now < first then redis.call('HSET', KEYS[2], 'first_ms', ARGV[2]) end
  local last = tonumber(redis.call('HGET', KEYS[2], 'last_ms'))
  if not last or now > last then redis.call('HSET', KEYS[2], 'last_ms', ARGV[2]) end
end
return new
`)

// settledScript counts how rounds of users ended, once per user and device
// whatever is replayed or redelivered: a user that became terminal adds to
// users_done the first time only ('u' members), and a device whose user ran
// out of retries adds to failed the first time only ('f' members), unless
// it is marked terminal already. The settled set lives apart from the sent
// marks, which hold device marks only.
//
// KEYS[1] sent marks, KEYS[2] stats, KEYS[3] settled set.
// ARGV[1] TTL seconds, ARGV[2] n, then n user members ('u' .. id), then
// the marks of failed devices.
var settledScript = rueidis.NewLuaScript(`
local last = 2 + tonumber(ARGV[2])
local done = 0
for j = 3, last, 512 do
  done = done + redis.call('SADD', KEYS[3], unpack(ARGV, j, math.min(j + 511, last)))
end
if done > 0 then redis.call('HINCRBY', KEYS[2], '` + pipeline.StatUsersDone + `', done) end
local failed = 0
for j = last + 1, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[j]) == 0 and redis.call('SADD', KEYS[3], 'f' .. ARGV[j]) == 1 then
    failed = failed + 1
  end
end
if failed > 0 then redis.call('HINCRBY', KEYS[2], '` + pipeline.StatFailed + `', failed) end
if redis.call('TTL', KEYS[3]) < 0 then redis.call('EXPIRE', KEYS[3], ARGV[1]) end
return 0
`)

// ackScript settles deliver entries, each in its own right: if the entry is
// still pending for this consumer and this call acks it, its users that need
// another attempt are scheduled into the retry set and its counters are
// added. An entry claimed away meanwhile, or acked already, changes nothing:
// its new owner settles it.
//
// KEYS[1] deliver stream, KEYS[2] retry set, KEYS[3..] stats hashes.
// ARGV: group, consumer, then per entry: id, nretry, (member, delay ms)*nretry,
// nincr, (key index, field, delta)*nincr.
// Returns the number of entries acked.
var ackScript = rueidis.NewLuaScript(`
local group, consumer = ARGV[1], ARGV[2]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local acked = 0
local i = 3
while i <= #ARGV do
  local id = ARGV[i]
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  local mine = #p > 0 and p[1][2] == consumer and redis.call('XACK', KEYS[1], group, id) == 1
  if mine then acked = acked + 1 end
  local nretry = tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, nretry do
    if mine then redis.call('ZADD', KEYS[2], string.format('%d', now + tonumber(ARGV[i + 1])), ARGV[i]) end
    i = i + 2
  end
  local nincr = tonumber(ARGV[i])
  i = i + 1
  for _ = 1, nincr do
    if mine then redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]) end
    i = i + 3
  end
end
return acked
`)

// keepScript keeps entries claimed while they are being sent: it resets the
// idle time of those still pending for this consumer (XCLAIM to itself,
// JUSTID so the delivery count stays) and returns their ids, so that no
// other consumer's XAUTOCLAIM takes over a batch that is merely slow because
// of the rate limit, and the handler knows which entries are still its own.
//
// KEYS[1] deliver stream. ARGV: group, consumer, id*.
var keepScript = rueidis.NewLuaScript(`
local kept = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #p > 0 and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
`)

// takeScript takes due retries without removing them: each taken member's
// score moves a lease into the future, so if this process dies mid-send the
// retry becomes due again for another poller instead of being lost.
//
// KEYS[1] retry set. ARGV[1] max members, ARGV[2] lease ms.
var takeScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGE', KEYS[1], '-inf', string.format('%d', now), 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
local lease = string.format('%d', now + tonumber(ARGV[2]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', lease, m) end
return due
`)

// settleScript records the end of retries taken by takeScript. Each one is
// removed; only if it was still there (nobody settled it after our lease
// ran out) is the next attempt scheduled and are its counters added, so a
// retry settles exactly once.
//
// KEYS[1] retry set, KEYS[2..] stats hashes.
// ARGV: per retry: member, next member or "", delay ms, nincr,
// (key index, field, delta)*nincr.
var settleScript = rueidis.NewLuaScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local settled = 0
local i = 1
while i <= #ARGV do
  local member, nextm, delay, nincr = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  i = i + 4
  local mine = redis.call('ZREM', KEYS[1], member) == 1
  if mine then
    settled = settled + 1
    if nextm ~= '' then redis.call('ZADD', KEYS[1], string.format('%d', now + delay), nextm) end
  end
  for _ = 1, nincr do
    if mine then redis.call('HINCRBY', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2]) end
    i = i + 3
  end
end
return settled
`)
