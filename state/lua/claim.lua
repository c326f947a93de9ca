-- claim.lua makes a consumer generation the owner of a partition's state and
-- reports where the partition stands.
--
-- KEYS[1] <prefix>:{<scope>}:owner   fencing token of the owner
-- KEYS[2] <prefix>:{<scope>}:offset  last applied input offset
-- KEYS[3] <prefix>:{<scope>}:timers  zset entity key -> due (Unix ms)
-- ARGV[1] token  the claimant's fencing token (its group generation)
-- ARGV[2] force  "1" to take the partition over whatever token owns it (a
--                recreated consumer group), "0" otherwise
--
-- Returns {1, offset, nextDue} when claimed (offset -1 when nothing was
-- applied, nextDue 0 when no timer is set), {0, owner} when a newer token
-- owns the partition.
local token = tonumber(ARGV[1])
local owner = tonumber(redis.call('GET', KEYS[1]))
if owner and owner > token and ARGV[2] ~= '1' then
  return {0, owner}
end
-- The owner key does not expire, like the offset: one per partition, and a
-- token that vanished would let an older writer in.
redis.call('SET', KEYS[1], ARGV[1])
local offset = tonumber(redis.call('GET', KEYS[2])) or -1
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local nextDue = 0
if first[2] then nextDue = tonumber(first[2]) end
return {1, offset, nextDue}
