-- shopwrite.lua writes one evaluation of the shop-level rules atomically:
-- each shop's spells, the alert records to deliver and the acks of those
-- delivered, after checking the writer's fencing token (shopclaim.lua).
--
-- KEYS[1] <prefix>:{shoprules}:owner   fencing token of the owner
-- KEYS[2] <prefix>:{shoprules}:state   hash shop -> spells
-- KEYS[3] <prefix>:{shoprules}:outbox  hash delivery key -> payload
-- ARGV[1] token  the writer's fencing token
-- ARGV[2..] sections, each a count n and then its n items:
--   states  n, n x (shop, spells)  empty spells delete the shop's entry
--   outbox  n, n x (delivery key, payload)
--   acks    n, n x delivery key
--
-- Returns {1} when written, {0, owner} when another token owns the state.
-- Nothing is written unless 1.
local owner = tonumber(redis.call('GET', KEYS[1]))
if owner ~= tonumber(ARGV[1]) then
  return {0, owner or 0}
end
local i = 2
local n = tonumber(ARGV[i])
for k = i + 1, i + 2 * n, 2 do
  if ARGV[k + 1] == '' then
    redis.call('HDEL', KEYS[2], ARGV[k])
  else
    redis.call('HSET', KEYS[2], ARGV[k], ARGV[k + 1])
  end
end
i = i + 1 + 2 * n
n = tonumber(ARGV[i])
for k = i + 1, i + 2 * n, 2 do
  redis.call('HSET', KEYS[3], ARGV[k], ARGV[k + 1])
end
i = i + 1 + 2 * n
n = tonumber(ARGV[i])
for k = i + 1, i + n do
  redis.call('HDEL', KEYS[3], ARGV[k])
end
return {1}
