package deliver

import "github.com/redis/rueidis"

// The limiter's state is one hash per provider and app
// (pipeline.Keys.RateLimit), shared by every deliver process:
//
//	tat    the theoretical arrival time: the slot of the next permit (µs)
//	cap    the cap in force: --tps, or less after the provider refused
//	ceil   the cap in force at the last refusal (0: none yet)
//	upd    when cap was last brought up to date (µs)
//	pause  no slot before this (µs): the provider's Retry-After
//	hold   refusals before this are of sends made at the old cap (µs)
//	allow  the largest allowance (µs) a process asked for lately, at allow_at
//
// Times are Redis's clock (TIME) in µs since the Unix epoch. Numbers are
// written with %.17g: Lua's tostring keeps 14 digits, which would round the
// times and drop the fractions a slowly recovering cap grows by.
//
// The GCRA arithmetic follows go-redis/redis_rate's allow_at_most script
// (itself from rwz/redis-gcra): tat advances by one emission interval per
// permit and a request may take as many permits as fit before now+ahead.
// What differs: the interval comes from the cap and the allowance instead of
// a fixed rate, and the permits come back as slots to be used at their
// time, not at once.
const limitLib = `
local function num(v, d) return tonumber(v) or d end
local function put(key, f)
  local args = {}
  for k, v in pairs(f) do
    args[#args+1] = k
    args[#args+1] = string.format('%.17g', v)
  end
  redis.call('HSET', key, unpack(args))
  -- Long enough that the next campaign within minutes starts from the
  -- provider's limit found by this one; then the cap is --tps again.
  redis.call('PEXPIRE', key, 600000)
end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- recover raises cap back toward tps over the time since upd: fast up to
-- knee * ceil (most of the way back to where the provider refused), then
-- slowly, probing for a limit the provider may have raised. A cap never
-- refused is tps (which may have changed since).
local function recover(cap, ceil, upd, now, tps, knee, fast, slow)
  if cap >= tps or ceil <= 0 then return tps end
  local dt = math.max(now - upd, 0) / 1000000
  local k = math.min(knee * ceil, tps)
  if cap < k then
    local need = (k - cap) / (fast * tps)
    if dt <= need then return cap + dt * fast * tps end
    cap, dt = k, dt - need
  end
  return math.min(cap + dt * slow * tps, tps)
end
`

// grantScript grants up to ARGV[2] permits of KEYS[1].
//
// ARGV: tps, want, ahead (µs: how far past now slots may be granted),
// allowance (µs, see limiter), knee, fast, slow.
// It returns {granted, first slot in µs after now, interval in ns, cap}, or
// {0, µs to wait before asking again, 0, cap}: cap is the cap in force,
// --tps or less after the provider refused.
var grantScript = rueidis.NewLuaScript(limitLib + `
local tps, want, ahead, allow = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = clock()
local f = redis.call('HMGET', KEYS[1], 'tat', 'cap', 'ceil', 'upd', 'pause', 'allow', 'allow_at')
local ceil = num(f[3], 0)
local cap = recover(num(f[2], tps), ceil, num(f[4], now), now, tps, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
local pause = num(f[5], 0)
-- The widest allowance any process asked for in the last three seconds
-- holds for all: one process seeing a noisy path makes everyone leave room.
local a, aAt = num(f[6], 0), num(f[7], 0)
if allow >= a or now - aAt > 3000000 then a, aAt = allow, now end
local st = {cap = cap, upd = now, allow = a, allow_at = aAt}
if now < pause then
  put(KEYS[1], st)
  return {0, math.ceil(pause - now), 0, math.floor(cap)}
end
-- Slots every (1 s + allowance) / cap: however they shift within the
-- allowance, no one-second window holds cap of them (see limiter).
local every = (1000000 + a + 1) / cap
local s = math.max(num(f[1], now), now)
local n = math.floor((now + ahead - s) / every) + 1
if n < 1 then
  put(KEYS[1], st)
  return {0, math.ceil(s - ahead - now), 0, math.floor(cap)}
end
n = math.min(n, want)
st.tat = math.ceil(s + n * every)
put(KEYS[1], st)
return {n, math.floor(s - now), math.ceil(every * 1000), math.floor(cap)}
`)

// refusedScript records that the provider refused a send of KEYS[1] for
// going over its rate: unless a refusal was recorded lately (hold), the cap
// falls to beta times what it was (multiplicative decrease; grantScript
// brings it back), and no slot is granted before the provider's
// Retry-After.
//
// ARGV: tps, retry after (µs), longest pause (µs), beta, hold (µs), knee,
// fast, slow.
// It returns {1 if it lowered the cap, the cap, µs of pause}.
var refusedScript = rueidis.NewLuaScript(limitLib + `
local tps, after, maxPause, beta, holdFor = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local now = clock()
local f = redis.call('HMGET', KEYS[1], 'tat', 'cap', 'ceil', 'upd', 'pause', 'hold')
local ceil = num(f[3], 0)
local cap = recover(num(f[2], tps), ceil, num(f[4], now), now, tps, tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]))
local pause, hold = num(f[5], 0), num(f[6], 0)
if now < hold then
  return {0, math.floor(cap), math.max(math.ceil(pause - now), 0)}
end
ceil = cap
cap = math.max(cap * beta, 1)
pause = math.max(pause, now + math.min(after, maxPause))
-- The cap comes back from when sending resumes (upd), not during the pause.
put(KEYS[1], {cap = cap, ceil = ceil, upd = pause, pause = pause, hold = pause + holdFor,
  tat = math.max(num(f[1], now), pause)})
return {1, math.floor(cap), math.ceil(pause - now)}
`)
