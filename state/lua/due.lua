-- due.lua is prepended to load.lua and apply.lua: reading the due timers
-- across a partition's timer buckets.

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

