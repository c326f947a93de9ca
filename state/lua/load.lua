-- load.lua reads entity states, and the entities whose timers are due with
-- their states, in one step. It writes nothing.
--
-- KEYS[1] <prefix>:{<scope>}:timers:first  zset timer bucket -> at most its
--                                          first due (see apply.lua)
-- ARGV[1] base   "<prefix>:{<scope>}:", the start of the partition's keys;
--                timer buckets are <base>timers:<bucket>, zset entity key
--                -> due (Unix ms)
-- ARGV[2] dueBy  timers due at or before this (Unix ms) are read; <= 0: none
-- ARGV[3] limit  at most this many due entities; <= 0: none
-- ARGV[4..] entity keys whose states are wanted
--
-- Returns {nextDue, {due entity keys, earliest first}, {states}}: states
-- holds the state (or nil) of each of ARGV[4..] and then of each due key.
local base = ARGV[1]
local dueBy = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])

-- before orders timers by due, then key, as one sorted set would.
local function before(x, y)
  if x[1] ~= y[1] then return x[1] < y[1] end
  return x[2] < y[2]
end

-- The buckets come by their index entry, which is at most their first
-- due: once limit timers are found, a bucket whose entry is later than
-- the last of them holds none that would be read.
local due = {}
if dueBy > 0 and limit > 0 then
  local found, cut = {}, math.huge
  local buckets = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', dueBy, 'WITHSCORES')
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
  for k = 1, math.min(#found, limit) do due[k] = found[k][2] end
end

local keys = {}
for i = 4, #ARGV do keys[#keys + 1] = base .. 'c:' .. ARGV[i] end
for i = 1, #due do keys[#keys + 1] = base .. 'c:' .. due[i] end

-- MGET in slices: unpack has a stack limit.
local states = {}
for i = 1, #keys, 1000 do
  local got = redis.call('MGET', unpack(keys, i, math.min(i + 999, #keys)))
  for j = 1, #got do states[#states + 1] = got[j] end
end

-- The earliest timer: apply.lua and claim.lua leave the index's first
-- score equal to it (they correct the entries before it), and only they
-- write timers.
local nextDue = 0
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then nextDue = tonumber(first[2]) end
return {nextDue, due, states}
