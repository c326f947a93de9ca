-- apply.lua writes one batch of a partition atomically: entity states,
-- timers, figures, waiting sets, the outbox and the applied offset, after
-- checking the writer's fencing token and that the batch is new.
--
-- KEYS[1] <prefix>:{<scope>}:owner         fencing token of the owner
-- KEYS[2] <prefix>:{<scope>}:offset        last applied input offset
-- KEYS[3] <prefix>:{<scope>}:timers        zset entity key -> due (Unix ms)
-- KEYS[4] <prefix>:{<scope>}:outbox        hash delivery key -> payload
-- KEYS[5] <prefix>:{<scope>}:outbox:lease  zset delivery key -> lease end (Unix ms)
-- KEYS[6] <prefix>:{<scope>}:shops         set of shops seen
-- ARGV[1] token     the writer's fencing token
-- ARGV[2] offset    last input offset of the batch; -1 when it covers none
-- ARGV[3] base      "<prefix>:{<scope>}:", the start of the partition's keys
-- ARGV[4] stateTTL  seconds an entity state lives after its last write (0: forever)
-- ARGV[5] dayTTL    seconds a day's figures live after their last change
-- ARGV[6] leaseEnd  lease end of the new outbox records (Unix ms)
-- ARGV[7..] sections, each a count n and then its n items:
--   states set      n, n x (entity key, state)           key <base>c:<entity key>
--   states deleted  n, n x entity key
--   timers set      n, n x (due, entity key)
--   timers removed  n, n x entity key
--   figure hashes   n, n x (suffix, m, m x (field, delta))
--                   suffix "d:<shop>:<day>" (expires) or "n:<shop>"
--   waiting sets    n, n x (shop, a, a x (start, buyer), r, r x buyer)
--                   key <base>w:<shop>
--   shops           n, n x shop
--   outbox          n, n x (delivery key, payload)
--   acks            n, n x delivery key
--   activity        n, n x (shop, field, ms)           key <base>n:<shop>
--                   the field is raised to ms when ms is later (agents' latest
--                   human message, for idle seats)
--
-- Entity, figure and waiting-set keys are built from base rather than
-- passed in KEYS (a batch has hundreds): they share the scope's hash tag,
-- so they live in KEYS[1]'s cluster slot.
--
-- An optional last section, after all of the above, asks for the next
-- batch's reads, done after this batch's writes as load.lua does them:
--   next load       dueBy, limit, n, n x entity key
--
-- Returns {1, nextDue} when written (nextDue 0 when no timer is set), and
-- with a next load {1, nextDue, {due entity keys, earliest first}, {their
-- due times}, {states}}, states as load.lua returns them;
-- {0, owner} when a newer token owns the partition, {2, offset} when the
-- batch's offset was applied already. Nothing is written unless 1.
local token = tonumber(ARGV[1])
local owner = tonumber(redis.call('GET', KEYS[1]))
if owner and owner > token then
  return {0, owner}
end
local offset = tonumber(ARGV[2])
local applied = tonumber(redis.call('GET', KEYS[2])) or -1
if offset >= 0 and offset <= applied then
  return {2, applied}
end

local base = ARGV[3]
local stateTTL = tonumber(ARGV[4])
local dayTTL = ARGV[5]
local leaseEnd = ARGV[6]

-- A missing or older owner is taken over: Redis lost it (a restart without
-- persistence, a failover) or this writer never claimed.
if owner ~= token then
  redis.call('SET', KEYS[1], ARGV[1])
end
if stateTTL > 0 then
  redis.call('EXPIRE', KEYS[1], stateTTL)
end

-- call runs cmd key ARGV[from..to] in slices: unpack has a stack limit.
local function call(cmd, key, from, to)
  for i = from, to, 4000 do
    redis.call(cmd, key, unpack(ARGV, i, math.min(i + 3999, to)))
  end
end

local i = 7
local n

n = tonumber(ARGV[i]); i = i + 1
for j = i, i + 2 * n - 1, 2 do
  if stateTTL > 0 then
    redis.call('SET', base .. 'c:' .. ARGV[j], ARGV[j + 1], 'EX', stateTTL)
  else
    redis.call('SET', base .. 'c:' .. ARGV[j], ARGV[j + 1])
  end
end
i = i + 2 * n

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  local keys = {}
  for j = i, i + n - 1 do keys[#keys + 1] = base .. 'c:' .. ARGV[j] end
  for j = 1, n, 4000 do
    redis.call('DEL', unpack(keys, j, math.min(j + 3999, n)))
  end
end
i = i + n

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then call('ZADD', KEYS[3], i, i + 2 * n - 1) end
i = i + 2 * n

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then call('ZREM', KEYS[3], i, i + n - 1) end
i = i + n

n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local suffix = ARGV[i]
  local key = base .. suffix
  local m = tonumber(ARGV[i + 1])
  i = i + 2
  for j = i, i + 2 * m - 1, 2 do
    redis.call('HINCRBY', key, ARGV[j], ARGV[j + 1])
  end
  i = i + 2 * m
  if string.sub(suffix, 1, 2) == 'd:' then
    redis.call('EXPIRE', key, dayTTL)
  end
end

n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  local key = base .. 'w:' .. ARGV[i]
  local a = tonumber(ARGV[i + 1])
  i = i + 2
  if a > 0 then call('ZADD', key, i, i + 2 * a - 1) end
  i = i + 2 * a
  local r = tonumber(ARGV[i])
  i = i + 1
  if r > 0 then call('ZREM', key, i, i + r - 1) end
  i = i + r
end

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then call('SADD', KEYS[6], i, i + n - 1) end
i = i + n

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  call('HSET', KEYS[4], i, i + 2 * n - 1)
  local leases = {}
  for j = i, i + 2 * n - 1, 2 do
    leases[#leases + 1] = leaseEnd
    leases[#leases + 1] = ARGV[j]
  end
  for j = 1, #leases, 4000 do
    redis.call('ZADD', KEYS[5], unpack(leases, j, math.min(j + 3999, #leases)))
  end
end
i = i + 2 * n

n = tonumber(ARGV[i]); i = i + 1
if n > 0 then
  call('HDEL', KEYS[4], i, i + n - 1)
  call('ZREM', KEYS[5], i, i + n - 1)
end
i = i + n

n = tonumber(ARGV[i]); i = i + 1
for j = i, i + 3 * n - 1, 3 do
  local key = base .. 'n:' .. ARGV[j]
  local cur = tonumber(redis.call('HGET', key, ARGV[j + 1]))
  if not cur or cur < tonumber(ARGV[j + 2]) then
    redis.call('HSET', key, ARGV[j + 1], ARGV[j + 2])
  end
end
i = i + 3 * n

if offset >= 0 then
  redis.call('SET', KEYS[2], ARGV[2])
end

local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local nextDue = 0
if first[2] then nextDue = tonumber(first[2]) end

-- The next batch's reads, in the same slot and after this batch's writes,
-- so that batch needs no round trip of its own.
if i <= #ARGV then
  local dueBy = tonumber(ARGV[i])
  local limit = tonumber(ARGV[i + 1])
  n = tonumber(ARGV[i + 2])
  i = i + 3
  local due, dueAt = {}, {}
  if dueBy > 0 and limit > 0 then
    local z = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', dueBy, 'WITHSCORES', 'LIMIT', 0, limit)
    for j = 1, #z, 2 do
      due[#due + 1] = z[j]
      dueAt[#dueAt + 1] = tonumber(z[j + 1])
    end
  end
  local keys = {}
  for j = i, i + n - 1 do keys[#keys + 1] = base .. 'c:' .. ARGV[j] end
  for j = 1, #due do keys[#keys + 1] = base .. 'c:' .. due[j] end
  local states = {}
  for j = 1, #keys, 1000 do
    local got = redis.call('MGET', unpack(keys, j, math.min(j + 999, #keys)))
    for k = 1, #got do states[#states + 1] = got[k] end
  end
  return {1, nextDue, due, dueAt, states}
end
return {1, nextDue}
