-- apply.lua writes one batch of a partition atomically: entity states,
-- timers, figures, waiting sets, the outbox and the applied offset, after
-- checking the writer's fencing token and that the batch is new. due.lua
-- comes before it.
--
-- KEYS[1] <prefix>:{<scope>}:owner         fencing token of the owner
-- KEYS[2] <prefix>:{<scope>}:offset        last applied input offset
-- KEYS[3] <prefix>:{<scope>}:timers:first  zset timer bucket -> at most its first due
-- KEYS[4] <prefix>:{<scope>}:outbox        hash entry key -> records
-- KEYS[5] <prefix>:{<scope>}:outbox:lease  zset entry key -> lease end (Unix ms)
-- KEYS[6] <prefix>:{<scope>}:shops         set of shops seen
-- KEYS[7] <prefix>:{<scope>}:c@old         Unix s until which entity states
--                                          of the earlier layout may remain
--                                          (see claim.lua)
-- ARGV[1] token     the writer's fencing token
-- ARGV[2] offset    last input offset of the batch; -1 when it covers none
-- ARGV[3] base      "<prefix>:{<scope>}:", the start of the partition's keys
-- ARGV[4] stateTTL  seconds an entity state lives after its last write (0: forever)
-- ARGV[5] dayTTL    seconds a day's figures live (counted from when the
--                   writer last gave the hash its TTL, see counter hashes)
-- ARGV[6] leaseEnd  lease end of the new outbox records (Unix ms)
-- ARGV[7] expect    the offset the writer has applied + 1; 0: unknown. A
--                   stored offset below it means Redis went back to an
--                   older state (restarted from an older snapshot)
-- ARGV[8] now       the partition's clock (Unix s), which picks the generation
--                   of entity states written (see stateGens in due.lua)
-- ARGV[9] period    seconds of a generation (0: one, which never expires)
-- ARGV[10..] sections, each a count n and then its n items:
--   states set      n, n x (entity key, state)
--                   one HSET into the newest generation <base>c@<g> (field
--                   entity key), which then expires (g + 1) x period +
--                   stateTTL from the epoch; one HDEL of the keys from each
--                   older generation, and, while the earlier layout's states
--                   may remain, one DEL of their keys <base>c:<entity key>
--   states deleted  n, n x entity key
--                   HDEL from every generation (and DEL of the earlier keys)
--   timers set      n, n x (bucket, first due, m, m x (due, entity key))
--   timers removed  n, n x (bucket, m, m x entity key)
--                   key <base>timers:<bucket>, zset entity key -> due (Unix ms);
--                   bucket: top bits of the key's hash (timerBucket, layout.go)
--   counter hashes  n, n x (suffix, ttl, m, m x (field, delta))
--                   suffix "d:<day>" (the day's counters) or "n" (current
--                   counters); ttl 1: give the hash dayTTL; field
--                   "<len(shop)>:<shop>:<name>"
--   waiting sets    n, n x (shop, a, a x (start, buyer, hash), r, r x (buyer, hash))
--                   zsets buyer -> wait start (Unix ms) in buckets by hash:
--                   <base>w:<shop> at level 0, else <base>w:<shop>:<b>;
--                   the level is field <shop> of hash <base>wl; hash: the
--                   buyer's FNV-1a (fnv32, layout.go)
--   shops           n, n x shop (added to the set of shops; the writer
--                   leaves out those it added recently)
--   outbox          n (0 or 1), n x (entry key, records)
--                   the batch's alert records as one entry (framed by Go,
--                   see state/outbox.go), leased until leaseEnd
--   firing          s, s x (alert id, from, to), r, r x alert id
--                   <base>firing, hash alert id -> payload of the alerts
--                   firing now: set each id to bytes from..to (1-based,
--                   inclusive) of the outbox entry's records, then remove
--                   the r ids; the hash lives stateTTL after its last write
--   acks            n, n x entry key (an entry of an earlier version: its
--                   one record's key)
--   activity        n, n x (field, ms)                 key <base>n
--                   the field is raised to ms when ms is later (agents' latest
--                   human message, for idle seats)
--
-- Entity-state, timer-bucket, figure and waiting-set keys are built from base
-- rather than passed in KEYS (a batch has hundreds): they share the scope's
-- hash tag, so they live in KEYS[1]'s cluster slot.
--
-- An optional last section, after all of the above, asks for the next
-- batch's reads, done after this batch's writes as load.lua does them:
--   next load       dueBy, limit, n, n x entity key
--
-- Returns {1, nextDue, 0} when written (nextDue 0 when no timer is set),
-- and with a next load {1, nextDue, 0, {due entity keys, earliest first},
-- {their due times}, {states}}, states as load.lua returns them;
-- {0, owner} when a newer token owns the partition, {2, offset} when the
-- batch's offset was applied already, {4, offset} when the stored offset is
-- below the writer's (Redis went back to an older state: the writer reads
-- the records after it again), {3, 0} when the owner key is missing:
-- Redis lost the partition's state (a restart without persistence, a
-- failover to an empty replica), which the writer must rebuild from Kafka
-- after claiming it again. Nothing is written unless 1.
local token = tonumber(ARGV[1])
local stored = redis.call('MGET', KEYS[1], KEYS[2], KEYS[7])
local owner = tonumber(stored[1])
if not owner then
  return {3, 0}
end
if owner > token then
  return {0, owner}
end
local offset = tonumber(ARGV[2])
local applied = tonumber(stored[2]) or -1
if offset >= 0 and offset <= applied then
  return {2, applied}
end
local expect = tonumber(ARGV[7])
if expect > 0 and applied + 1 < expect then
  return {4, applied}
end

local base = ARGV[3]
local stateTTL = tonumber(ARGV[4])
local dayTTL = ARGV[5]
local leaseEnd = ARGV[6]
local now = tonumber(ARGV[8])
local period = tonumber(ARGV[9])
local old = oldStatesLive(tonumber(stored[3]), now)

-- An older owner is taken over: this writer's generation is newer.
if owner ~= token then
  redis.call('SET', KEYS[1], ARGV[1])
end
local lost = 0

-- chunks calls f(from, to) over the range first..last in slices of at
-- most 4000: unpack has a stack limit. Every variadic command goes through
-- it.
local function chunks(first, last, f)
  for j = first, last, 4000 do
    f(j, math.min(j + 3999, last))
  end
end

-- call runs cmd key ARGV[from..to] in slices.
local function call(cmd, key, from, to)
  chunks(from, to, function(a, b) redis.call(cmd, key, unpack(ARGV, a, b)) end)
end

-- callT runs cmd key t[1..#t] (after the optional arg) in slices.
local function callT(cmd, key, t, arg)
  chunks(1, #t, function(a, b)
    if arg then
      redis.call(cmd, key, arg, unpack(t, a, b))
    else
      redis.call(cmd, key, unpack(t, a, b))
    end
  end)
end

-- zsetCompact and maxWaitLevel are the constants of layout.go.
local zsetCompact = 128
local maxWaitLevel = 6

-- waitKey is layout.go's waitKey: the key of bucket b of a shop's waiting
-- set at level.
local function waitKey(shop, level, b)
  if level == 0 then return base .. 'w:' .. shop end
  return base .. 'w:' .. shop .. ':' .. b
end

-- splitWaiting moves a shop's waiting set from level to level + 1: bucket
-- b's members go to 2b or 2b + 1 by the next bit of their hash, the highest
-- bucket first so that no bucket is written before it is read. Both halves
-- are written afresh, so a bucket that had grown into a skiplist is
-- listpack-encoded again. Returns the size of the largest new bucket.
local function splitWaiting(shop, level)
  local width, biggest = 2 ^ level, 0
  local next = 2 ^ (31 - level)
  for b = width - 1, 0, -1 do
    local key = waitKey(shop, level, b)
    local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
    if #all > 0 then
      redis.call('DEL', key)
      local lo, hi = {}, {}
      for k = 1, #all, 2 do
        local t = lo
        if math.floor(fnv32(all[k]) / next) % 2 == 1 then t = hi end
        t[#t + 1] = all[k + 1]
        t[#t + 1] = all[k]
      end
      callT('ZADD', waitKey(shop, level + 1, 2 * b), lo)
      callT('ZADD', waitKey(shop, level + 1, 2 * b + 1), hi)
      biggest = math.max(biggest, #lo / 2, #hi / 2)
    end
  end
  return biggest
end

-- Counter hashes are read once (HMGET) and written once (HSET) however
-- many of their fields the batch changes; counters(key) gathers a hash's
-- changes, flushCounters writes them all.
local hashes, hashOrder = {}, {}
local function counters(key)
  local h = hashes[key]
  if not h then
    h = {fields = {}, values = {}, max = {}}
    hashes[key] = h
    hashOrder[#hashOrder + 1] = key
  end
  return h
end

-- Each section function reads its section from ARGV[i] (its count) on and
-- returns where the next section starts.

-- Entity states: the generations live now, newest first (stateGens in
-- due.lua), read once when first needed.
local gens
local function liveGens()
  if not gens then gens = stateGens(base, now, period, stateTTL) end
  return gens
end

-- dropStates removes the entities in keys from the generations gens[from..]
-- and, while there may be some, their states of the earlier layout.
local function dropStates(keys, from)
  local g = liveGens()
  for k = from, #g do callT('HDEL', base .. 'c@' .. g[k], keys) end
  if old then
    local names = {}
    for k = 1, #keys do names[k] = base .. 'c:' .. keys[k] end
    chunks(1, #names, function(a, b) redis.call('DEL', unpack(names, a, b)) end)
  end
end

local function statesSet(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n == 0 then return i end
  local g = liveGens()[1]
  local hash = base .. 'c@' .. g
  call('HSET', hash, i, i + 2 * n - 1)
  if period > 0 then
    redis.call('EXPIRE', hash, (g + 1) * period + stateTTL - now)
  end
  if #liveGens() > 1 or old then
    local keys = {}
    for j = i, i + 2 * n - 1, 2 do keys[#keys + 1] = ARGV[j] end
    dropStates(keys, 2)
  end
  return i + 2 * n
end

local function statesDeleted(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n == 0 then return i end
  local keys = {}
  for j = i, i + n - 1 do keys[#keys + 1] = ARGV[j] end
  dropStates(keys, 1)
  return i + n
end

-- Timers: each bucket's ZADD or ZREM, then one ZADD LT of the buckets'
-- earliest new dues into the index, which keeps every bucket's entry at or
-- below its first due. Removals and later moves leave the entry low;
-- firstDue below corrects it when it comes first.
local function timersSet(i)
  local n = tonumber(ARGV[i]); i = i + 1
  local firsts = {}
  for _ = 1, n do
    local bucket, m = ARGV[i], tonumber(ARGV[i + 2])
    firsts[#firsts + 1] = ARGV[i + 1]
    firsts[#firsts + 1] = bucket
    i = i + 3
    call('ZADD', base .. 'timers:' .. bucket, i, i + 2 * m - 1)
    i = i + 2 * m
  end
  callT('ZADD', KEYS[3], firsts, 'LT')
  return i
end

local function timersRemoved(i)
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    local key, m = base .. 'timers:' .. ARGV[i], tonumber(ARGV[i + 1])
    i = i + 2
    call('ZREM', key, i, i + m - 1)
    i = i + m
  end
  return i
end

local function counterHashes(i)
  local n = tonumber(ARGV[i]); i = i + 1
  for _ = 1, n do
    local h = counters(base .. ARGV[i])
    h.expire = ARGV[i + 1] == '1'
    local m = tonumber(ARGV[i + 2])
    i = i + 3
    for j = i, i + 2 * m - 1, 2 do
      h.fields[#h.fields + 1] = ARGV[j]
      h.values[#h.values + 1] = tonumber(ARGV[j + 1])
      h.max[#h.max + 1] = false
    end
    i = i + 2 * m
  end
  return i
end

-- waitingSet applies one shop's adds and removals at ARGV[i] on (after its
-- name) to its set at level, and splits the set while a checked bucket is
-- over zsetCompact. A bucket's size is checked after about one add in
-- eight (by bits of the buyer's hash that pick neither bucket nor Kafka
-- partition): it may outgrow zsetCompact by a few members until then, and
-- the split writes it compact again.
local function waitingSet(shop, level, i)
  local width = 2 ^ (32 - level)
  local a = tonumber(ARGV[i]); i = i + 1
  local adds, order, check = {}, {}, {}
  for j = i, i + 3 * a - 1, 3 do
    local h = tonumber(ARGV[j + 2])
    local b = math.floor(h / width)
    if not adds[b] then adds[b] = {}; order[#order + 1] = b end
    if math.floor(h / 256) % 8 == 0 then check[b] = true end
    local t = adds[b]
    t[#t + 1] = ARGV[j]
    t[#t + 1] = ARGV[j + 1]
  end
  i = i + 3 * a
  local biggest = 0
  for _, b in ipairs(order) do
    local key = waitKey(shop, level, b)
    callT('ZADD', key, adds[b])
    if check[b] then biggest = math.max(biggest, redis.call('ZCARD', key)) end
  end
  local r = tonumber(ARGV[i]); i = i + 1
  local rems, rorder = {}, {}
  for j = i, i + 2 * r - 1, 2 do
    local b = math.floor(tonumber(ARGV[j + 1]) / width)
    if not rems[b] then rems[b] = {}; rorder[#rorder + 1] = b end
    local t = rems[b]
    t[#t + 1] = ARGV[j]
  end
  for _, b in ipairs(rorder) do
    callT('ZREM', waitKey(shop, level, b), rems[b])
  end
  while biggest > zsetCompact and level < maxWaitLevel do
    biggest = splitWaiting(shop, level)
    level = level + 1
    redis.call('HSET', base .. 'wl', shop, level)
  end
  return i + 2 * r
end

-- Waiting sets: a shop's set at level L (field of <base>wl, 0 when absent)
-- is 2^L buckets chosen by the top L bits of the buyer's FNV-1a hash, see
-- waitKey in layout.go. A bucket grown past zsetCompact members is split by
-- raising the shop's level, so buckets stay listpack-encoded.
local function waitingSets(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n == 0 then return i end
  local shops, j = {}, i
  for _ = 1, n do
    shops[#shops + 1] = ARGV[j]
    local a = tonumber(ARGV[j + 1])
    j = j + 2 + 3 * a
    j = j + 1 + 2 * tonumber(ARGV[j])
  end
  local levels = redis.call('HMGET', base .. 'wl', unpack(shops))
  for s = 1, n do
    i = waitingSet(ARGV[i], tonumber(levels[s]) or 0, i + 1)
  end
  return i
end

local function shopsSection(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then call('SADD', KEYS[6], i, i + n - 1) end
  return i + n
end

-- records is the batch's outbox entry, which firing cuts payloads from.
local records = ''

local function outbox(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n == 0 then return i end
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[5], leaseEnd, ARGV[i])
  records = ARGV[i + 1]
  return i + 2
end

local function firing(i)
  local key = base .. 'firing'
  local s = tonumber(ARGV[i]); i = i + 1
  if s > 0 then
    local set = {}
    for j = i, i + 3 * s - 1, 3 do
      set[#set + 1] = ARGV[j]
      set[#set + 1] = string.sub(records, tonumber(ARGV[j + 1]), tonumber(ARGV[j + 2]))
    end
    callT('HSET', key, set)
  end
  i = i + 3 * s
  local r = tonumber(ARGV[i]); i = i + 1
  if r > 0 then call('HDEL', key, i, i + r - 1) end
  if stateTTL > 0 and s + r > 0 then redis.call('EXPIRE', key, stateTTL) end
  return i + r
end

local function acks(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then
    call('HDEL', KEYS[4], i, i + n - 1)
    call('ZREM', KEYS[5], i, i + n - 1)
  end
  return i + n
end

local function activity(i)
  local n = tonumber(ARGV[i]); i = i + 1
  if n > 0 then
    local h = counters(base .. 'n')
    for j = i, i + 2 * n - 1, 2 do
      h.fields[#h.fields + 1] = ARGV[j]
      h.values[#h.values + 1] = tonumber(ARGV[j + 1])
      h.max[#h.max + 1] = true
    end
  end
  return i + 2 * n
end

-- flushCounters writes the counter hashes the sections gathered: sums
-- added to what is stored, maxima raised.
local function flushCounters()
  for _, key in ipairs(hashOrder) do
    local h = hashes[key]
    local fields = h.fields
    local cur = {}
    chunks(1, #fields, function(a, b)
      local got = redis.call('HMGET', key, unpack(fields, a, b))
      for k = 1, #got do cur[#cur + 1] = got[k] end
    end)
    local set = {}
    for k = 1, #fields do
      local old = tonumber(cur[k])
      local v = h.values[k]
      if not h.max[k] then
        v = (old or 0) + v
      elseif old and old >= v then
        v = nil -- a maximum only rises
      end
      if v then
        set[#set + 1] = fields[k]
        set[#set + 1] = string.format('%d', v)
      end
    end
    callT('HSET', key, set)
    if h.expire then
      redis.call('EXPIRE', key, dayTTL)
    end
  end
end

-- The sections of ARGV[10..], in order: applySections in layout.go, which
-- encodeBatch follows (TestApplySectionsMatchLua checks the two agree).
local sections = {
  {'states set', statesSet},
  {'states deleted', statesDeleted},
  {'timers set', timersSet},
  {'timers removed', timersRemoved},
  {'counter hashes', counterHashes},
  {'waiting sets', waitingSets},
  {'shops', shopsSection},
  {'outbox', outbox},
  {'firing', firing},
  {'acks', acks},
  {'activity', activity},
}

local i = 10
for _, s in ipairs(sections) do
  i = s[2](i)
end
flushCounters()

if offset >= 0 then
  redis.call('SET', KEYS[2], ARGV[2])
end

local nextDue = earliestTimer(KEYS[3], base)

-- The next batch's reads, in the same slot and after this batch's writes,
-- so that batch needs no round trip of its own.
if i <= #ARGV then
  local dueBy = tonumber(ARGV[i])
  local limit = tonumber(ARGV[i + 1])
  local n = tonumber(ARGV[i + 2])
  i = i + 3
  local due, dueAt = {}, {}
  if nextDue > 0 and nextDue <= dueBy then -- else none is due
    due, dueAt = dueTimers(KEYS[3], base, dueBy, limit)
  end
  local found = {}
  if n > 0 or #due > 0 then found = states(base, liveGens(), old, i, i + n - 1, due) end
  return {1, nextDue, lost, due, dueAt, found}
end
return {1, nextDue, lost}
