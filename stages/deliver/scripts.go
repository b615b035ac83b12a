package deliver

import (
	"strconv"

	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Every script below touches keys of one partition's hash tag {p<n>} only:
// the deliver stream, its retry set, and the campaign's sent marks and
// counters in that partition. So each is atomic on a cluster too.

// orMask is the Lua both mark scripts share: orMask(key, first, mask, want)
// ORs mask into the bitmap key from byte first (one GETRANGE, one SETRANGE
// if anything changed, a byte per 8 ids) and returns how many bits it set
// and, when want is true, per byte of the mask the bits it set. It gives the
// key the TTL ARGV[1] if it has none.
var orMask = `
local band, bor, bxor, rshift = bit.band, bit.bor, bit.bxor, bit.rshift
local byte, char = string.byte, string.char
local function orMask(key, first, mask, want)
  local old = redis.call('GETRANGE', key, first, first + #mask - 1)
  local out, added, news = {}, 0, nil
  if want then news = {} end
  for i = 1, #mask do
    local ob = byte(old, i) or 0
    local nb = bor(ob, byte(mask, i))
    out[i] = nb
    local x = bxor(nb, ob)
    if x ~= 0 then
      if want then news[i] = x end
      while x ~= 0 do x = band(x, x - 1); added = added + 1 end
    end
  end
  if added > 0 then
    redis.call('SETRANGE', key, first, char(unpack(out)))
    if redis.call('TTL', key) < 0 then redis.call('EXPIRE', key, ARGV[1]) end
  end
  return added, news
end
`

// bitsPerChunk is 2^chunkBits (a bitmap chunk), for the scripts.
var bitsPerChunk = strconv.Itoa(1 << chunkBits)

// markScript records devices that reached a terminal state for a campaign
// (sent, invalid or failed) and counts each one the first time only: a
// redelivered entry skips marked devices, and a mark repeated after a crash
// counts nothing. A device counted failed when its user ran out of retries
// (settledScript) and marked now, after a DLQ retry, moves out of failed
// (looked up only when the partition has failures at all).
//
// With results on, it also appends a result event (pipeline.ResultEvent) to
// the partition's results stream for each bit it newly sets, and for no
// other: the event is written exactly when the outcome becomes durable, and
// a repeat after a crash finds the bit set and writes none. The counters are
// named as the outcomes (pipeline.StatSent is pipeline.OutcomeSent...).
//
// KEYS[1] stats (hash), KEYS[2] settled set, KEYS[3] results stream, KEYS[4..]
// sent chunk bitmaps. ARGV[1] TTL seconds, ARGV[2] now unix ms, ARGV[3] "1"
// to write results, ARGV[4] event id prefix (pipeline.ResultIDPrefix),
// ARGV[5] campaign or message field, ARGV[6] its id, ARGV[7] app; then per
// counter: counter, ngroups, the groups (appendMasks: key index, chunk,
// first byte, mask), ndevices, then per device: id, user, platform, token,
// reason (ndevices is 0 with results off).
var markScript = rueidis.NewLuaScript(orMask + pipeline.LuaXAdd + `
local failedBefore = tonumber(redis.call('HGET', KEYS[1], '` + pipeline.StatFailed + `')) or 0
local results = ARGV[3] == '1'
local sent, new, unfailed = false, 0, 0
local i = 8
while i <= #ARGV do
  local counter, ngroups = ARGV[i], tonumber(ARGV[i + 1])
  local g = i + 2
  i = g + 4 * ngroups
  local ndevs, devs = tonumber(ARGV[i]), {}
  for d = i + 1, i + 5 * ndevs, 5 do devs[ARGV[d]] = d end
  i = i + 1 + 5 * ndevs
  local added = 0
  for _ = 1, ngroups do
    local key, chunk, first, mask = KEYS[tonumber(ARGV[g])], tonumber(ARGV[g + 1]), tonumber(ARGV[g + 2]), ARGV[g + 3]
    g = g + 4
    local n, news = orMask(key, first, mask, failedBefore > 0 or results)
    added = added + n
    if news then
      for b, x in pairs(news) do
        for pos = 0, 7 do
          if band(x, rshift(128, pos)) ~= 0 then
            local id = string.format('%.0f', chunk * ` + bitsPerChunk + ` + (first + b - 1) * 8 + pos)
            if failedBefore > 0 and redis.call('SREM', KEYS[2], 'f' .. id) == 1 then unfailed = unfailed + 1 end
            local d = devs[id]
            if results and d then
              local ev = {'` + pipeline.FieldID + `', ARGV[4] .. id, ARGV[5], ARGV[6], '` + pipeline.FieldApp + `', ARGV[7],
                '` + pipeline.FieldUser + `', ARGV[d + 1], '` + pipeline.FieldPlatform + `', ARGV[d + 2],
                '` + pipeline.FieldToken + `', ARGV[d + 3], '` + pipeline.FieldOutcome + `', counter, '` + pipeline.FieldAtMs + `', ARGV[2]}
              if ARGV[d + 4] ~= '' then ev[#ev + 1] = '` + pipeline.FieldReason + `'; ev[#ev + 1] = ARGV[d + 4] end
              xadd(KEYS[3], ev)
            end
          end
        end
      end
    end
  end
  if added > 0 then
    redis.call('HINCRBY', KEYS[1], counter, added)
    new = new + added
    if counter == '` + pipeline.StatSent + `' then sent = true end
  end
end
if unfailed > 0 then redis.call('HINCRBY', KEYS[1], '` + pipeline.StatFailed + `', -unfailed) end
if sent then
  local now = tonumber(ARGV[2])
  local t = redis.call('HMGET', KEYS[1], 'first_ms', 'last_ms')
  local first, last = tonumber(t[1]), tonumber(t[2])
  if not first or now < first then redis.call('HSET', KEYS[1], 'first_ms', ARGV[2]) end
  if not last or now > last then redis.call('HSET', KEYS[1], 'last_ms', ARGV[2]) end
end
return new
`)

// settledScript counts how rounds of users ended, once per user and device
// whatever is replayed or redelivered: a user that became terminal adds to
// users_done the first time only (its bit in the done bitmaps), and a device
// whose user ran out of retries adds to failed the first time only ('f'
// members of the settled set), unless it is marked terminal already.
//
// KEYS[1] stats, KEYS[2] settled set, KEYS[3..] chunk bitmaps (done users,
// sent marks). ARGV[1] TTL seconds, ARGV[2] number of user groups, then the
// user groups (appendMasks: key index, chunk, first byte, mask), then the
// failed devices' groups (appendGroups: key index of their sent chunk, n,
// n device ids).
var settledScript = rueidis.NewLuaScript(orMask + `
local i = 3
local done = 0
for _ = 1, tonumber(ARGV[2]) do
  done = done + orMask(KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 2]), ARGV[i + 3], false)
  i = i + 4
end
if done > 0 then redis.call('HINCRBY', KEYS[1], '` + pipeline.StatUsersDone + `', done) end
local failed = 0
while i <= #ARGV do
  local key, last = KEYS[tonumber(ARGV[i])], i + 1 + tonumber(ARGV[i + 1])
  for x = i + 2, last do
    local off = math.fmod(tonumber(ARGV[x]), ` + bitsPerChunk + `)
    if redis.call('GETBIT', key, off) == 0 and redis.call('SADD', KEYS[2], 'f' .. ARGV[x]) == 1 then
      failed = failed + 1
    end
  end
  i = last + 1
end
if failed > 0 then
  redis.call('HINCRBY', KEYS[1], '` + pipeline.StatFailed + `', failed)
  if redis.call('TTL', KEYS[2]) < 0 then redis.call('EXPIRE', KEYS[2], ARGV[1]) end
end
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
