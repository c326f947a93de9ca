-- due.lua is prepended to load.lua, apply.lua and claim.lua: the hash of
-- the layout, reading a partition's timers across its timer buckets, and
-- reading entity states.

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

-- states reads the entity states (nil when absent) of ARGV[from..to] and
-- then of the keys in due, in that order; MGET in slices, as unpack has a
-- stack limit.
local function states(base, from, to, due)
  local keys = {}
  for j = from, to do keys[#keys + 1] = base .. 'c:' .. ARGV[j] end
  for j = 1, #due do keys[#keys + 1] = base .. 'c:' .. due[j] end
  local out = {}
  for j = 1, #keys, 1000 do
    local got = redis.call('MGET', unpack(keys, j, math.min(j + 999, #keys)))
    for k = 1, #got do out[#out + 1] = got[k] end
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

