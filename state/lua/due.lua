-- due.lua is prepended to load.lua, apply.lua and claim.lua: the hash of
-- the layout, reading a partition's timers across its timer buckets, and
-- the generations of entity states and reading them.

-- fnv32 is layout.go's fnv32 (FNV-1a) in plain arithmetic, exact in
-- doubles, as a number in [0, 2^32).
local function fnv32(str)
  local h = 2166136261
  for k = 1, #str do
    local c, low, x, p = string.byte(str, k), h % 256, 0, 1
    for _ = 1, 8 do -- x = low xor c
      if low % 2 ~= c % 2 then x = x + p end
      low, c, p = math.floor(low / 2), math.floor(c / 2), p * 2
    end
    h = h - h % 256 + x
    -- h * 16777619 = h * 2^24 + h * 403; only h's low byte survives 2^24.
    h = ((h % 256) * 16777216 + h * 403) % 4294967296
  end
  return h
end

-- Entity states live in generation hashes <base>c@<g>, field entity key ->
-- state: a state written at now (Unix s, the partition's clock: the
-- writer's, ahead by a phase, Redis.clock in redis.go) goes to
-- generation g = floor(now / period), whose hash expires at (g + 1) x
-- period + ttl, so that it lives at least ttl after its last write and at
-- most a period more (statePeriod in layout.go). period 0 (states never
-- expire): one hash, c@0.
--
-- stateGens returns the generations that may hold live states, newest
-- first: g + 1 when its hash exists (written by a writer whose clock is
-- ahead; writes then go there too, so the newest always wins), g, and the
-- generations before it whose hash has not expired yet. The first is the
-- one written.
local function stateGens(base, now, period, ttl)
  if period <= 0 then return {0} end
  local g = math.floor(now / period)
  local gens = {}
  if redis.call('EXISTS', base .. 'c@' .. (g + 1)) == 1 then gens[1] = g + 1 end
  local k = g
  while (k + 1) * period + ttl > now do
    gens[#gens + 1] = k
    k = k - 1
  end
  return gens
end

-- oldStatesLive tells whether states of the earlier layout, one key
-- <base>c:<entity key> each, may remain at now (Unix s). old is the value
-- of <base>c@old, which claim.lua sets once: the Unix s until which they
-- may, 0 when there were none, -1 when they never expire; nil (not set):
-- they may.
local function oldStatesLive(old, now)
  return old == nil or old < 0 or now < old
end

-- states reads the entity states (false when absent) of ARGV[from..to]
-- and then of the keys in due, in that order: an HMGET of each generation
-- in gens, newest first, for the keys no newer one holds, and, when old is
-- true, an MGET of the earlier layout's keys <base>c:<entity key> for
-- those none holds. In slices, as unpack has a stack limit.
local function states(base, gens, old, from, to, due)
  local keys = {}
  for j = from, to do keys[#keys + 1] = ARGV[j] end
  for j = 1, #due do keys[#keys + 1] = due[j] end
  local out, missing = {}, {}
  for j = 1, #keys do
    out[j] = false
    missing[j] = j
  end
  -- read(cmd, key, names) fills out from cmd over names, the keys of
  -- missing in order, and keeps in missing those it did not find.
  local function read(cmd, key, names)
    local still = {}
    for j = 1, #names, 1000 do
      local got
      if key then
        got = redis.call(cmd, key, unpack(names, j, math.min(j + 999, #names)))
      else
        got = redis.call(cmd, unpack(names, j, math.min(j + 999, #names)))
      end
      for k = 1, #got do
        local at = missing[j + k - 1]
        if got[k] then out[at] = got[k] else still[#still + 1] = at end
      end
    end
    missing = still
  end
  for _, g in ipairs(gens) do
    if #missing == 0 then break end
    local names = keys
    if #missing < #keys then
      names = {}
      for k = 1, #missing do names[k] = keys[missing[k]] end
    end
    read('HMGET', base .. 'c@' .. g, names)
  end
  if old and #missing > 0 then
    local names = {}
    for k = 1, #missing do names[k] = base .. 'c:' .. keys[missing[k]] end
    read('MGET', nil, names)
  end
  return out
end

-- dueTimers reads at most limit timers due at or before dueBy (Unix ms),
-- earliest first and ties by key, as one sorted set would give them: their
-- entity keys and due times. index is the zset of timer buckets (bucket ->
-- at most its first due), base the start of the partition's keys; buckets
-- are <base>timers:<bucket>. dueBy or limit <= 0: none.
local function dueTimers(index, base, dueBy, limit)
  local due, dueAt = {}, {}
  if dueBy <= 0 or limit <= 0 then return due, dueAt end
  local function before(x, y)
    if x[1] ~= y[1] then return x[1] < y[1] end
    return x[2] < y[2]
  end
  -- The buckets come by their index entry, which is at most their first
  -- due: once limit timers are found, a bucket whose entry is later than
  -- the last of them holds none that would be read.
  local found, cut = {}, math.huge
  local buckets = redis.call('ZRANGEBYSCORE', index, '-inf', dueBy, 'WITHSCORES')
  for b = 1, #buckets, 2 do
    if tonumber(buckets[b + 1]) > cut then break end
    local got = redis.call('ZRANGEBYSCORE', base .. 'timers:' .. buckets[b], '-inf', dueBy,
      'WITHSCORES', 'LIMIT', 0, limit)
    for k = 1, #got, 2 do found[#found + 1] = {tonumber(got[k + 1]), got[k]} end
    if #found >= 2 * limit then -- trimmed now and then: sorting is not free
      table.sort(found, before)
      local kept = {}
      for k = 1, limit do kept[k] = found[k] end
      found = kept
      cut = found[limit][1]
    end
  end
  table.sort(found, before)
  for k = 1, math.min(#found, limit) do
    due[k] = found[k][2]
    dueAt[k] = found[k][1]
  end
  return due, dueAt
end


-- earliestTimer returns the partition's earliest timer (Unix ms, 0 when
-- none) and corrects the index's front. Index entries are read in order, a
-- page at a time, and each is set to its bucket's first due (dropped with
-- an empty bucket) until one is no earlier than the earliest due found:
-- every later entry is at or below its bucket's first due, so none is
-- earlier. Afterwards the index's first score is the earliest due, which
-- load.lua reads. It writes, so only apply.lua and claim.lua call it.
local function earliestTimer(index, base)
  local nextDue = 0
  local fixed, gone, at = {}, {}, 0
  while true do
    local page = redis.call('ZRANGE', index, at, at + 15, 'WITHSCORES')
    local done = #page == 0
    for k = 1, #page, 2 do
      local score = tonumber(page[k + 1])
      if nextDue > 0 and score >= nextDue then done = true; break end
      local got = redis.call('ZRANGE', base .. 'timers:' .. page[k], 0, 0, 'WITHSCORES')
      if not got[1] then
        gone[#gone + 1] = page[k]
      else
        local first = tonumber(got[2])
        if first ~= score then
          fixed[#fixed + 1] = got[2]
          fixed[#fixed + 1] = page[k]
        end
        if nextDue == 0 or first < nextDue then nextDue = first end
      end
    end
    if done then break end
    at = at + 16
  end
  if #fixed > 0 then redis.call('ZADD', index, unpack(fixed)) end
  if #gone > 0 then redis.call('ZREM', index, unpack(gone)) end
  return nextDue
end

