package deliver

import (
	"github.com/redis/rueidis"

	"github.com/pushpipe/pushpipe/pipeline"
)

// Every script below touches keys of one partition's hash tag {p<n>} only:
// the deliver stream, its retry set, and the campaign's sent marks and
// counters in that partition. So each is atomic on a cluster too.

// orMask is the Lua both mark scripts share: orMask(key, field, first,
// mask) ORs mask into a chunk of marks from byte first: the bitmap key when
// field is "" (one GETRANGE, one SETRANGE if anything changed), else the
// field of the hash key (a message's, pipeline.MessageMarkBits). It returns
// how many bits it set and the chunk's bytes as they were (shorter than the
// mask where the chunk was): a caller that needs to know which bits were
// new reads them from those bytes, only when it needs to, rather than every
// call building a table of them. It gives the key the TTL ARGV[1] from now,
// once per key and call: marks must outlive the campaign's last write, not
// its first (a campaign may send for longer than its TTL and an hour, and
// the marks of the devices it sent first are what keep a retry, claim or
// replay from sending to them again). bitAt(key, field, off) reads one bit
// of such a chunk.
//
// A message's devices are scattered, a hash field apiece, so its fields are
// read through and written back: an HGET per field the first time the call
// needs it, one HSET per key for every field it changed (flushMarks, which
// each script calls before it returns), where an HGET, an HSET and a TTL
// per device made the marks most of Redis's work for direct messages.
var orMask = `
local band, bor, bxor, rshift = bit.band, bit.bor, bit.bxor, bit.rshift
local byte, char, sub, rep = string.byte, string.char, string.sub, string.rep
local hvals, hdirty, ttlDone = {}, {}, {}
local function expireOnce(key)
  if ttlDone[key] then return end
  ttlDone[key] = true
  redis.call('EXPIRE', key, ARGV[1])
end
local function hget(key, field)
  local kv = hvals[key]
  if not kv then
    kv = {}
    hvals[key] = kv
  end
  local v = kv[field]
  if v == nil then
    v = redis.call('HGET', key, field) or ''
    kv[field] = v
  end
  return v
end
local function hsetLater(key, field, v)
  local d = hdirty[key]
  if not d then
    d = {}
    hdirty[key] = d
  end
  if not d[field] then
    d[field] = true
    d[#d + 1] = field
  end
  hvals[key][field] = v
end
local function flushMarks()
  for key, d in pairs(hdirty) do
    local args = {}
    for _, f in ipairs(d) do
      args[#args + 1] = f
      args[#args + 1] = hvals[key][f]
      if #args >= 1000 then
        redis.call('HSET', key, unpack(args))
        args = {}
      end
    end
    if #args > 0 then redis.call('HSET', key, unpack(args)) end
    expireOnce(key)
  end
end
local function orMask(key, field, first, mask)
  local old, whole
  if field == '' then
    old = redis.call('GETRANGE', key, first, first + #mask - 1)
  else
    whole = hget(key, field)
    old = sub(whole, first + 1, first + #mask)
  end
  local out, added = {}, 0
  for i = 1, #mask do
    local ob = byte(old, i) or 0
    local nb = bor(ob, byte(mask, i))
    out[i] = nb
    local x = bxor(nb, ob)
    while x ~= 0 do x = band(x, x - 1); added = added + 1 end
  end
  if added > 0 then
    if field == '' then
      redis.call('SETRANGE', key, first, char(unpack(out)))
      expireOnce(key)
    else
      if #whole < first then whole = whole .. rep('\0', first - #whole) end
      hsetLater(key, field, sub(whole, 1, first) .. char(unpack(out)) .. sub(whole, first + #mask + 1))
    end
  end
  return added, old
end
local function bitAt(key, field, off)
  if field == '' then return redis.call('GETBIT', key, off) end
  local b = byte(hget(key, field), math.floor(off / 8) + 1) or 0
  if band(b, rshift(128, off % 8)) ~= 0 then return 1 end
  return 0
end
`

// writeResults is the Lua both mark scripts share to append their results
// entry: writeResults(first, n, skip) XADDs to KEYS[3] the n fields and
// values from ARGV[first] on (pipeline.ResultHeader, the records), and skip, the ids of
// devices whose records are repeats, when there are any.
var writeResults = pipeline.LuaXAdd + `
local function writeResults(first, n, skip)
  local fields = {}
  for f = first, first + n - 1 do fields[#fields + 1] = ARGV[f] end
  if #skip > 0 then
    fields[#fields + 1] = '` + pipeline.FieldSkip + `'
    fields[#fields + 1] = table.concat(skip, ',')
  end
  xadd(KEYS[3], fields)
end
`

// markScript records devices that reached a terminal state for a campaign
// (sent, invalid or failed) and counts each one the first time only: a
// redelivered entry skips marked devices, and a mark repeated after a crash
// counts nothing. A device counted failed when its user ran out of retries
// (settledScript) and marked now, after a DLQ retry, moves out of failed
// (looked up only when the partition has failures at all). Failed and
// invalid devices also count under their reason (Keys.Reasons), once.
//
// With results on, it appends the devices' result events to the
// partition's results stream in one entry (pipeline.ResultHeader, records
// built by the caller): an event is written exactly when its outcome
// becomes durable. In the usual call every device is new and the entry is
// written as given, with no work per device here; when some were marked
// already (a repeat after a crash), their ids go in the entry's skip field,
// computed from the bits that were set before; when none is new, nothing is
// written.
//
// KEYS[1] stats (hash), KEYS[2] settled set, KEYS[3] results stream, KEYS[4]
// reasons (hash), KEYS[5..] sent chunk bitmaps. ARGV[1] TTL seconds, ARGV[2]
// now unix ms, ARGV[3] n, the number of results entry fields and values that
// follow (0: results off), then per group of devices of one counter and
// reason: counter (unsent counts in failed too), reason ("" to count none), ndevices, ngroups, the groups
// (appendMasks: key index, field, first id, first byte, mask). It returns,
// per group of devices, how many it marked for the first time: with
// results on, the events it wrote of that group's outcome. Groups whose
// counter is "" come last: a forced entry's record of the devices its
// rounds marked (forcedsent.go, Keys.ForcedSent), bits set and nothing
// counted, and no answer of their own.
var markScript = rueidis.NewLuaScript(orMask + writeResults + `
local failedBefore = tonumber(redis.call('HGET', KEYS[1], '` + pipeline.StatFailed + `')) or 0
local nres = tonumber(ARGV[3])
local results = nres > 0
local sent, new, unfailed, skip, news = false, 0, 0, {}, {}
local i = 4 + nres
while i <= #ARGV do
  local counter, reason, ndevs, ngroups = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
  local g = i + 4
  i = g + 5 * ngroups
  if counter == '' then
    -- A forced entry's record of the devices its rounds marked: set, not counted.
    for _ = 1, ngroups do
      orMask(KEYS[tonumber(ARGV[g])], ARGV[g + 1], tonumber(ARGV[g + 3]), ARGV[g + 4])
      g = g + 5
    end
  else
    local added, groups = 0, {}
    for _ = 1, ngroups do
      local key, field, base, first, mask = KEYS[tonumber(ARGV[g])], ARGV[g + 1], tonumber(ARGV[g + 2]), tonumber(ARGV[g + 3]), ARGV[g + 4]
      g = g + 5
      local n, before = orMask(key, field, first, mask)
      added = added + n
      if failedBefore > 0 or results then groups[#groups + 1] = {base, first, before, mask} end
    end
    -- Bit by bit only when some device was marked before (its event is a
    -- repeat: skipped) or a device may move out of failed.
    local repeats = results and added < ndevs
    if failedBefore > 0 or repeats then
      for _, gr in ipairs(groups) do
        local base, first, before, mask = gr[1], gr[2], gr[3], gr[4]
        for b = 1, #mask do
          local m = byte(mask, b)
          local old = band(m, byte(before, b) or 0)
          local x = bxor(m, old)
          for pos = 0, 7 do
            local bit = rshift(128, pos)
            local isNew, isOld = band(x, bit) ~= 0, repeats and band(old, bit) ~= 0
            if isNew or isOld then
              local id = string.format('%.0f', base + (first + b - 1) * 8 + pos)
              if isOld then skip[#skip + 1] = id end
              if isNew and failedBefore > 0 and redis.call('SREM', KEYS[2], 'f' .. id) == 1 then unfailed = unfailed + 1 end
            end
          end
        end
      end
    end
    news[#news + 1] = added
    if added > 0 then
      redis.call('HINCRBY', KEYS[1], counter, added)
      if counter == '` + pipeline.StatUnsent + `' then redis.call('HINCRBY', KEYS[1], '` + pipeline.StatFailed + `', added) end
      new = new + added
      if counter == '` + pipeline.StatSent + `' then sent = true end
      if reason ~= '' then
        redis.call('HINCRBY', KEYS[4], reason, added)
        redis.call('EXPIRE', KEYS[4], ARGV[1]) -- from the last write, as the marks
      end
    end
  end
end
if results and new > 0 then writeResults(4, nres, skip) end
if unfailed > 0 then redis.call('HINCRBY', KEYS[1], '` + pipeline.StatFailed + `', -unfailed) end
if sent then
  local now = tonumber(ARGV[2])
  local t = redis.call('HMGET', KEYS[1], 'first_ms', 'last_ms')
  local first, last = tonumber(t[1]), tonumber(t[2])
  if not first or now < first then redis.call('HSET', KEYS[1], 'first_ms', ARGV[2]) end
  if not last or now > last then redis.call('HSET', KEYS[1], 'last_ms', ARGV[2]) end
end
flushMarks()
return news
`)

// settledScript counts how rounds of users ended, once per user and device
// whatever is replayed or redelivered: a user that became terminal adds to
// users_done the first time only (its bit in the done bitmaps), and a device
// whose user ran out of retries adds to failed, and to its reason
// (Keys.Reasons), the first time only ('f' members of the settled set),
// unless it is marked terminal already. With results on, those devices'
// failed events are appended as markScript appends its own: one entry, the
// devices not counted now listed as skipped, none when no device is new.
//
// Users with no device are counted done the same way, and also in
// no_devices: the people a campaign or message found nobody to send to for.
// Counting users done, it records when (StatDoneMs) and keeps the readings
// of the recent pace (pipeline.StatDonePace).
//
// KEYS[1] stats, KEYS[2] settled set, KEYS[3] results stream, KEYS[4]
// reasons, KEYS[5..] chunk bitmaps (done users, sent marks). ARGV[1] TTL
// seconds, ARGV[2] number of user groups, ARGV[3] number of groups of users
// with no device, ARGV[4] n, the number of results entry fields and values
// that follow (0: results off), ARGV[5] how old the newest reading of the
// pace gets before the next is taken (ms; negative: none, for a direct
// message, done in moments and given no expected finish), then the user groups and the groups of
// users with no device (appendMasks: key index, field, first id, first
// byte, mask), then per reason of failed devices: the reason, its number of
// groups, the groups (appendGroups: key index and field of their sent
// chunk, its first id, n, n device ids). It returns how many failed events
// it wrote.
var settledScript = rueidis.NewLuaScript(orMask + writeResults + `
local nres = tonumber(ARGV[4])
local i = 6 + nres
local done = 0
for _ = 1, tonumber(ARGV[2]) do
  done = done + orMask(KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 3]), ARGV[i + 4])
  i = i + 5
end
local bare = 0
for _ = 1, tonumber(ARGV[3]) do
  bare = bare + orMask(KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 3]), ARGV[i + 4])
  i = i + 5
end
if bare > 0 then
  redis.call('HINCRBY', KEYS[1], '` + pipeline.StatNoDevices + `', bare)
  done = done + bare
end
if done > 0 then
  local total = redis.call('HINCRBY', KEYS[1], '` + pipeline.StatUsersDone + `', done)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local v = redis.call('HMGET', KEYS[1], '` + pipeline.StatDoneMs + `', '` + pipeline.StatDonePace + `')
  local last = tonumber(v[1])
  if not last or now > last then redis.call('HSET', KEYS[1], '` + pipeline.StatDoneMs + `', now) end
  -- A new reading of the pace once the newest is ARGV[5] ms old, the
  -- newest kept as the older one; none with ARGV[5] negative.
  local every, ms, n = tonumber(ARGV[5]), nil, nil
  if v[2] then ms, n = string.match(v[2], '^(%d+),(%d+)') end
  if every < 0 then
  elseif not ms then
    redis.call('HSET', KEYS[1], '` + pipeline.StatDonePace + `', string.format('%.0f,%.0f', now, total))
  elseif now - tonumber(ms) >= every then
    redis.call('HSET', KEYS[1], '` + pipeline.StatDonePace + `', string.format('%.0f,%.0f,', now, total) .. ms .. ',' .. n)
  end
end
local failed, skip = 0, {}
while i <= #ARGV do
  local reason, ngroups, counted = ARGV[i], tonumber(ARGV[i + 1]), 0
  i = i + 2
  for _ = 1, ngroups do
    local key, field, base, last = KEYS[tonumber(ARGV[i])], ARGV[i + 1], tonumber(ARGV[i + 2]), i + 3 + tonumber(ARGV[i + 3])
    for x = i + 4, last do
      if bitAt(key, field, tonumber(ARGV[x]) - base) == 0 and redis.call('SADD', KEYS[2], 'f' .. ARGV[x]) == 1 then
        counted = counted + 1
      elseif nres > 0 then
        skip[#skip + 1] = ARGV[x]
      end
    end
    i = last + 1
  end
  if counted > 0 then
    failed = failed + counted
    redis.call('HINCRBY', KEYS[4], reason, counted)
    redis.call('EXPIRE', KEYS[4], ARGV[1]) -- from the last write, as the marks
  end
end
local written = 0
if failed > 0 then
  redis.call('HINCRBY', KEYS[1], '` + pipeline.StatFailed + `', failed)
  redis.call('EXPIRE', KEYS[2], ARGV[1]) -- from the last write, as the marks
  if nres > 0 then
    writeResults(6, nres, skip)
    written = failed
  end
end
flushMarks()
return written
`)
