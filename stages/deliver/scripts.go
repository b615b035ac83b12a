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
// With results on, it also appends the result events (pipeline.ResultEvent,
// as JSON, built by the caller) of the devices whose bit it newly set, and
// of no other, to the partition's results stream, in one entry: an event
// is written exactly when its outcome becomes durable, and a repeat after a
// crash finds the bit set and writes none.
//
// KEYS[1] stats (hash), KEYS[2] settled set, KEYS[3] results stream, KEYS[4..]
// sent chunk bitmaps. ARGV[1] TTL seconds, ARGV[2] now unix ms, ARGV[3] "1"
// to write results; then per counter: counter, ngroups, the groups
// (appendMasks: key index, chunk, first byte, mask), ndevices, then per
// device its id and its event's JSON (ndevices is 0 with results off).
var markScript = rueidis.NewLuaScript(orMask + pipeline.LuaXAdd + `
local failedBefore = tonumber(redis.call('HGET', KEYS[1], '` + pipeline.StatFailed + `')) or 0
local results = ARGV[3] == '1'
local sent, new, unfailed, events = false, 0, 0, {}
local i = 4
while i <= #ARGV do
  local counter, ngroups = ARGV[i], tonumber(ARGV[i + 1])
  local g = i + 2
  i = g + 4 * ngroups
  local ndevs, devsAt = tonumber(ARGV[i]), i + 1
  i = i + 1 + 2 * ndevs
  local added, groups = 0, {}
  for _ = 1, ngroups do
    local key, chunk, first, mask = KEYS[tonumber(ARGV[g])], tonumber(ARGV[g + 1]), tonumber(ARGV[g + 2]), ARGV[g + 3]
    g = g + 4
    local n, news = orMask(key, first, mask, failedBefore > 0 or results)
    added = added + n
    if news then groups[#groups + 1] = {chunk, first, news} end
  end
  -- Every device new (the usual case): all their events, in order.
  local all = results and added == ndevs
  if all then
    for d = devsAt + 1, devsAt + 2 * ndevs - 1, 2 do events[#events + 1] = ARGV[d] end
  end
  -- Otherwise (a repeat), or to move devices out of failed: bit by bit.
  if failedBefore > 0 or (results and not all and added > 0) then
    local devs = {}
    if results and not all then
      for d = devsAt, devsAt + 2 * ndevs - 2, 2 do devs[ARGV[d]] = d + 1 end
    end
    for _, gr in ipairs(groups) do
      local chunk, first = gr[1], gr[2]
      for b, x in pairs(gr[3]) do
        for pos = 0, 7 do
          if band(x, rshift(128, pos)) ~= 0 then
            local id = string.format('%.0f', chunk * ` + bitsPerChunk + ` + (first + b - 1) * 8 + pos)
            if failedBefore > 0 and redis.call('SREM', KEYS[2], 'f' .. id) == 1 then unfailed = unfailed + 1 end
            local d = devs[id]
            if d then events[#events + 1] = ARGV[d] end
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
if #events > 0 then
  xadd(KEYS[3], {'` + pipeline.FieldEvents + `', '[' .. table.concat(events, ',') .. ']'})
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
