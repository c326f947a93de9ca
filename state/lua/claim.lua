-- claim.lua makes a consumer generation the owner of a partition's state and
-- reports where the partition stands. due.lua comes before it.
--
-- KEYS[1] <prefix>:{<scope>}:owner   fencing token of the owner
-- KEYS[2] <prefix>:{<scope>}:offset  last applied input offset
-- KEYS[3] <prefix>:{<scope>}:timers:first  zset timer bucket -> at most its
--                                          first due (buckets
--                                          <prefix>:{<scope>}:timers:<bucket>,
--                                          zset entity key -> due, see apply.lua)
-- KEYS[4] <prefix>:{<scope>}:timers  the single timer set of earlier
--                                    versions, moved into buckets here
-- KEYS[5] <prefix>:{<scope>}:c@old   the time (ARGV[4]'s clock) until
--                                    which entity states of
--                                    the earlier layout (one key
--                                    <prefix>:{<scope>}:c:<entity key> each,
--                                    expiring stateTTL after their last
--                                    write) may remain; set here once
-- ARGV[1] token  the claimant's fencing token (its group generation)
-- ARGV[2] force  "1" to take the partition over whatever token owns it (a
--                recreated consumer group), "0" otherwise
-- ARGV[3] base   "<prefix>:{<scope>}:", the start of the partition's keys
-- ARGV[4] now    the partition's clock (Unix s, see due.lua)
-- ARGV[5] stateTTL seconds an entity state lives after its last write (0:
--                forever)
--
-- Returns {1, offset, nextDue} when claimed (offset -1 when nothing was
-- applied, nextDue 0 when no timer is set), {0, owner} when a newer token
-- owns the partition.
local token = tonumber(ARGV[1])
local owner = tonumber(redis.call('GET', KEYS[1]))
if owner and owner > token and ARGV[2] ~= '1' then
  return {0, owner}
end
-- The first claim of this layout: a partition that had an owner may hold
-- states of the earlier layout, read (and removed when written) until they
-- have expired; one that had none, or whose state Redis lost with its
-- owner key, holds none.
if redis.call('EXISTS', KEYS[5]) == 0 then
  local old = 0
  if owner then
    local ttl = tonumber(ARGV[5])
    old = -1
    if ttl > 0 then old = tonumber(ARGV[4]) + ttl end
  end
  redis.call('SET', KEYS[5], old)
end
-- The owner key does not expire, like the offset: one per partition, and a
-- token that vanished would let an older writer in.
redis.call('SET', KEYS[1], ARGV[1])
local offset = tonumber(redis.call('GET', KEYS[2])) or -1

-- Timers of the single-set layout go to their buckets (the top 10 bits of
-- the hash, timerBucketBits in layout.go), once.
local old = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
if #old > 0 then
  local buckets, firsts = {}, {}
  for k = 1, #old, 2 do
    local b = math.floor(fnv32(old[k]) / 4194304) -- the top 10 bits
    local t = buckets[b]
    if not t then t = {}; buckets[b] = t end
    t[#t + 1] = old[k + 1]
    t[#t + 1] = old[k]
  end
  for b, t in pairs(buckets) do
    for k = 1, #t, 4000 do
      redis.call('ZADD', ARGV[3] .. 'timers:' .. b, unpack(t, k, math.min(k + 3999, #t)))
    end
    firsts[#firsts + 1] = t[1] -- the set was read in due order
    firsts[#firsts + 1] = b
  end
  for k = 1, #firsts, 4000 do
    redis.call('ZADD', KEYS[3], 'LT', unpack(firsts, k, math.min(k + 3999, #firsts)))
  end
  redis.call('DEL', KEYS[4])
end

local nextDue = earliestTimer(KEYS[3], ARGV[3])
return {1, offset, nextDue}
