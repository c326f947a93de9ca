-- outbox.lua hands out the outbox entries whose lease has ended and leases
-- them again, so that a crashed writer's alerts are sent by the next one.
--
-- KEYS[1] <prefix>:{<scope>}:owner         fencing token of the owner
-- KEYS[2] <prefix>:{<scope>}:outbox        hash entry key -> records (apply.lua)
-- KEYS[3] <prefix>:{<scope>}:outbox:lease  zset entry key -> lease end (Unix ms)
-- ARGV[1] token     the reader's fencing token
-- ARGV[2] now       Unix ms; leases ending at or before it are over
-- ARGV[3] leaseEnd  new lease end of the records handed out (Unix ms)
-- ARGV[4] limit     at most this many entries
--
-- Returns {1, {key, payload, key, payload, ...}} ordered by lease end,
-- {0, owner} when a newer token owns the partition, or {3, 0} when the owner
-- key is missing: Redis lost the partition's state (see apply.lua).
local owner = tonumber(redis.call('GET', KEYS[1]))
if not owner then
  return {3, 0}
end
if owner > tonumber(ARGV[1]) then
  return {0, owner}
end
local keys = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[2], 'LIMIT', 0, ARGV[4])
if #keys == 0 then
  return {1, {}}
end
local payloads = redis.call('HMGET', KEYS[2], unpack(keys))
local out, leases, gone = {}, {}, {}
for j = 1, #keys do
  if payloads[j] then
    out[#out + 1] = keys[j]
    out[#out + 1] = payloads[j]
    leases[#leases + 1] = ARGV[3]
    leases[#leases + 1] = keys[j]
  else
    -- A lease without its record: drop it.
    gone[#gone + 1] = keys[j]
  end
end
if #leases > 0 then redis.call('ZADD', KEYS[3], unpack(leases)) end
if #gone > 0 then redis.call('ZREM', KEYS[3], unpack(gone)) end
return {1, out}
