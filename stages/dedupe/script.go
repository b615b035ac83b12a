package dedupe

import (
	"github.com/pushpipe/pushpipe/pipeline"
)

// dedupeScript is the whole dedupe step for a batch of one partition, run by
// the runner as the batch's commit (pipeline.CommitScript), so it is atomic
// with the ack: mark the entries' users, forward first sightings to deliver,
// count. A crash at any instant leaves all of it or none of it, and a batch
// claimed by another consumer meanwhile writes nothing.
//
// Marks are hashes (keys.Seen for reached users, keys.Muted for users
// seen only as muted) whose field is a user's bucket (id >> 10, decimal) and
// whose value is the bucket's set of 1024 possible users in one of two forms:
// a bitmap of exactly 128 bytes (bit id%8 of byte id%1024/8, least
// significant first) once the bucket holds 64 users or more, otherwise a list
// of 2-byte big-endian offsets (fewer than 128 bytes). Dense ids cost a bit
// per user (10M users ≈ 1.3 MB), sparse ids a few bytes each, where a raw
// bitmap over ids up to 10^12 would be impossible. The entries' fragments
// (field, set of the entry's ids in that bucket) come in the same two forms.
//
// The counters keep people exact: targets counts first sightings, dups
// repeats of reached users, muted users seen muted and not (yet) reached: a
// muted sighting of someone neither reached nor muted before adds one, the
// first reached sighting of someone muted before takes that one back.
//
// An entry whose reached users were all new is forwarded with its original u;
// otherwise the survivors are re-encoded (EncodeIDs: varint count, zigzag
// varint deltas) here, with ids split as bucket*2048+2*offset so that Lua's
// doubles stay exact for any positive int64 id.
//
// KEYS: deliver stream, then per campaign: seen, muted, stats.
// ARGV: ncampaigns, per campaign (id, marks expire ms, counters expire ms,
// check: "1" to refuse the batch if the expired campaign's marks are gone),
// nentries, per entry (campaign index, force, ids in, the stats field
// counting its range's reading or "" (pipeline.ReadField), u, nreached,
// nmuted, then nreached+nmuted (field, fragment) pairs).
var dedupeScript = pipeline.NewCommitScript(`
local band, bor, bnot = bit.band, bit.bor, bit.bnot
local byte, char, floor = string.byte, string.char, math.floor

local BIT = {1, 2, 4, 8, 16, 32, 64, 128}
local POP = {[0] = 0}
for i = 1, 255 do POP[i] = POP[floor(i / 2)] + i % 2 end

local function load(v)
  if not v then return {l = {}} end
  if #v == 128 then return {b = {byte(v, 1, 128)}} end
  local l = {}
  for i = 1, #v, 2 do l[#l + 1] = byte(v, i) * 256 + byte(v, i + 1) end
  return {l = l}
end

local function has(s, off)
  if s.b then return band(s.b[floor(off / 8) + 1], BIT[off % 8 + 1]) ~= 0 end
  if not s.idx then
    s.idx = {}
    for _, o in ipairs(s.l) do s.idx[o] = true end
  end
  return s.idx[off] == true
end

local function add(s, off)
  if s.b then
    local i = floor(off / 8) + 1
    s.b[i] = bor(s.b[i], BIT[off % 8 + 1])
    return
  end
  s.l[#s.l + 1] = off
  if s.idx then s.idx[off] = true end
  if #s.l == 64 then
    local b = {}
    for i = 1, 128 do b[i] = 0 end
    for _, o in ipairs(s.l) do
      local i = floor(o / 8) + 1
      b[i] = bor(b[i], BIT[o % 8 + 1])
    end
    s.b, s.l, s.idx = b, nil, nil
  end
end

local function dump(s)
  if s.b then return char(unpack(s.b)) end
  local t = {}
  for i, o in ipairs(s.l) do t[i] = char(floor(o / 256), o % 256) end
  return table.concat(t)
end

-- offsets lists the offsets of a fragment (or of a 128-entry byte table).
local function offsets(frag)
  local out = {}
  if type(frag) == 'table' or #frag == 128 then -- a byte table or a bitmap
    local bytes = frag
    if type(frag) ~= 'table' then bytes = {byte(frag, 1, 128)} end
    for i = 1, 128 do
      local x = bytes[i]
      if x ~= 0 then
        for k = 0, 7 do
          if band(x, BIT[k + 1]) ~= 0 then out[#out + 1] = (i - 1) * 8 + k end
        end
      end
    end
  else
    for i = 1, #frag, 2 do out[#out + 1] = byte(frag, i) * 256 + byte(frag, i + 1) end
  end
  return out
end

-- hmget reads fields of a hash (false where absent); hset writes field,
-- value pairs. Both in chunks that keep unpack within Lua's stack.
local function hmget(key, fields)
  local out = {}
  for s = 1, #fields, 1000 do
    local r = redis.call('HMGET', key, unpack(fields, s, math.min(s + 999, #fields)))
    for i = 1, #r do out[s + i - 1] = r[i] end
  end
  return out
end

local function hset(key, kv)
  for s = 1, #kv, 1000 do redis.call('HSET', key, unpack(kv, s, math.min(s + 999, #kv))) end
end

-- reach marks a fragment of reached users in a bucket whose stored marks are
-- old and whose muted marks are mv (false when none). It returns the new and
-- repeated counts, the new users (conv: a byte table or list string that
-- offsets() expands, else an offset list), and the bucket's new value.
local function reach(c, frag, old, mv)
  local mu = mv and load(mv)
  if not old and #frag < 128 then
    -- a bucket's first sighting, sparse: all new, stored as it came
    if mu then
      for _, off in ipairs(offsets(frag)) do
        if has(mu, off) then c.mutedDelta = c.mutedDelta - 1 end
      end
    end
    return #frag / 2, 0, frag, true, frag
  end
  local nnew, ndup = 0, 0
  if #frag == 128 and (not old or #old == 128) then
    -- dense: a byte (8 users) at a time
    local fb = {byte(frag, 1, 128)}
    local ob = old and {byte(old, 1, 128)}
    local nb = {}
    for i = 1, 128 do
      local f, o = fb[i], ob and ob[i] or 0
      local n = band(f, bnot(o))
      nb[i] = n
      nnew = nnew + POP[n]
      ndup = ndup + POP[band(f, o)]
      fb[i] = bor(f, o)
    end
    if nnew > 0 and mu then
      if mu.b then
        for i = 1, 128 do c.mutedDelta = c.mutedDelta - POP[band(nb[i], mu.b[i])] end
      else
        for _, o in ipairs(mu.l) do
          if band(nb[floor(o / 8) + 1], BIT[o % 8 + 1]) ~= 0 then c.mutedDelta = c.mutedDelta - 1 end
        end
      end
    end
    return nnew, ndup, nb, true, nnew > 0 and char(unpack(fb))
  end
  local s = load(old)
  local fresh = {}
  for _, off in ipairs(offsets(frag)) do
    if has(s, off) then
      ndup = ndup + 1
    else
      add(s, off)
      nnew = nnew + 1
      fresh[#fresh + 1] = off
      if mu and has(mu, off) then c.mutedDelta = c.mutedDelta - 1 end
    end
  end
  return nnew, ndup, fresh, false, nnew > 0 and dump(s)
end

-- mute records a fragment of muted users in a bucket (reached marks sv,
-- muted marks mv): counted once per person, and only while they have not
-- been reached. It returns the bucket's new muted value, or false.
local function mute(c, frag, sv, mv)
  if not sv and not mv and #frag < 128 then
    c.mutedDelta = c.mutedDelta + #frag / 2
    return frag
  end
  local s, m = load(sv), load(mv)
  local n = 0
  for _, off in ipairs(offsets(frag)) do
    if not has(s, off) and not has(m, off) then
      add(m, off)
      n = n + 1
    end
  end
  c.mutedDelta = c.mutedDelta + n
  return n > 0 and dump(m)
end

-- varint appends the unsigned varint of hi*2048+lo (0 <= lo < 2048).
local function varint(parts, hi, lo)
  while hi > 0 or lo >= 128 do
    parts[#parts + 1] = char(lo % 128 + 128)
    lo = floor(lo / 128) + (hi % 128) * 16
    hi = floor(hi / 128)
  end
  parts[#parts + 1] = char(lo)
end

-- encode is EncodeIDs of the survivors: {bucket, new users, dense} in id order.
local function encode(survivors)
  local parts, count, pb, po = {}, 0, 0, 0
  for _, sv in ipairs(survivors) do
    local offs = sv[2]
    if sv[3] then offs = offsets(offs) end -- a byte table or a list string
    for _, o in ipairs(offs) do
      local hi, lo = sv[1] - pb, 2 * (o - po)
      if lo < 0 then hi, lo = hi - 1, lo + 2048 end
      varint(parts, hi, lo)
      pb, po, count = sv[1], o, count + 1
    end
  end
  local head = {}
  varint(head, floor(count / 2048), count % 2048)
  return table.concat(head) .. table.concat(parts)
end

local nc = tonumber(ARGV[1])
local camps = {}
local a = 2
for j = 1, nc do
  local k = 3 * j - 1
  camps[j] = {id = ARGV[a], marks = ARGV[a + 1], counters = ARGV[a + 2],
    seen = KEYS[k], muted = KEYS[k + 1], stats = KEYS[k + 2],
    hasMuted = redis.call('EXISTS', KEYS[k + 1]) == 1,
    inn = 0, inr = 0, targets = 0, dups = 0, mutedDelta = 0, reads = {}}
  -- an expired campaign whose marks went (stages/dedupe/expired.go):
  -- refused before anything is written; the retry dead-letters it
  if ARGV[a + 3] == '1' and not camps[j].hasMuted and redis.call('EXISTS', KEYS[k]) == 0
      and tonumber(redis.call('HGET', KEYS[k + 2], '` + pipeline.StatIn + `') or '0') > 0 then
    error('dedupe marks of expired campaign ' .. ARGV[a] .. ' are gone')
  end
  a = a + 4
end
local ne = tonumber(ARGV[a])
a = a + 1

local p = a
for e = 1, ne do
  local c, force, u = camps[tonumber(ARGV[p])], ARGV[p + 1] == '1', ARGV[p + 4]
  local nr, nm = tonumber(ARGV[p + 5]), tonumber(ARGV[p + 6])
  local ids, read = tonumber(ARGV[p + 2]), ARGV[p + 3]
  c.inn = c.inn + ids
  if read ~= '' then
    c.reads[read] = (c.reads[read] or 0) + ids
    c.inr = c.inr + ids
  end
  p = p + 7
  local nnew, ndup, survivors = 0, 0, {}
  if nr > 0 then
    local fields, frags, sets = {}, {}, {}
    for i = 1, nr do
      fields[i], frags[i] = ARGV[p], ARGV[p + 1]
      p = p + 2
    end
    local olds = hmget(c.seen, fields)
    local mvs = c.hasMuted and hmget(c.muted, fields) or {}
    for i = 1, nr do
      local n, d, fresh, conv, val = reach(c, frags[i], olds[i], mvs[i])
      if n > 0 then
        survivors[#survivors + 1] = {tonumber(fields[i]), fresh, conv}
        sets[#sets + 1], sets[#sets + 2] = fields[i], val
      end
      nnew, ndup = nnew + n, ndup + d
    end
    hset(c.seen, sets)
  end
  if nm > 0 then
    local fields, frags, sets = {}, {}, {}
    for i = 1, nm do
      fields[i], frags[i] = ARGV[p], ARGV[p + 1]
      p = p + 2
    end
    local svs, mvs = hmget(c.seen, fields), hmget(c.muted, fields)
    for i = 1, nm do
      local val = mute(c, frags[i], svs[i], mvs[i])
      if val then sets[#sets + 1], sets[#sets + 2] = fields[i], val end
    end
    if #sets > 0 then
      hset(c.muted, sets)
      c.hasMuted = true
    end
  end
  c.targets = c.targets + nnew
  if force then
    if nr > 0 then emit(KEYS[1], '` + pipeline.FieldCampaign + `', c.id, '` + pipeline.FieldUsers + `', u, '` + pipeline.FieldForce + `', '1') end
  else
    c.dups = c.dups + ndup
    if nnew > 0 then
      if ndup > 0 then u = encode(survivors) end
      emit(KEYS[1], '` + pipeline.FieldCampaign + `', c.id, '` + pipeline.FieldUsers + `', u)
    end
  end
end

for _, c in ipairs(camps) do
  if c.inn ~= 0 then redis.call('HINCRBY', c.stats, '` + pipeline.StatIn + `', c.inn) end
  if c.inr ~= 0 then redis.call('HINCRBY', c.stats, '` + pipeline.StatInReadings + `', c.inr) end
  for field, n in pairs(c.reads) do redis.call('HINCRBY', c.stats, field, n) end
  if c.targets ~= 0 then redis.call('HINCRBY', c.stats, '` + pipeline.StatTargets + `', c.targets) end
  if c.dups ~= 0 then redis.call('HINCRBY', c.stats, '` + pipeline.StatDups + `', c.dups) end
  if c.mutedDelta ~= 0 then redis.call('HINCRBY', c.stats, '` + pipeline.StatMuted + `', c.mutedDelta) end
  redis.call('PEXPIREAT', c.stats, c.counters)
  redis.call('PEXPIREAT', c.seen, c.marks)
  if c.hasMuted then redis.call('PEXPIREAT', c.muted, c.marks) end
end

`)
