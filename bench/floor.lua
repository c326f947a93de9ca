-- floor.lua is the least a batch of a partition writes in the design
-- (DESIGN.md §5): the fencing check and the applied offset, as apply.lua
-- begins, then the batch's entity states and one timer per entity, each
-- in one variadic command.
--
-- KEYS[1] <prefix>:{<scope>}:owner    fencing token of the owner
-- KEYS[2] <prefix>:{<scope>}:offset   last applied input offset
-- KEYS[3] <prefix>:{<scope>}:s        hash entity key -> state
-- KEYS[4] <prefix>:{<scope>}:t        zset entity key -> due (Unix ms)
-- ARGV[1] token    the writer's fencing token
-- ARGV[2] offset   last input offset of the batch
-- ARGV[3] n        entities of the batch
-- ARGV[4 .. 3+2n]       n x (entity key, state)
-- ARGV[4+2n .. 3+4n]    n x (due, entity key)
--
-- Returns {1} when written, {0, owner} when a newer token owns the
-- partition, {2, offset} when the batch was applied already, {3} when the
-- owner key is missing. Nothing is written unless 1.
local stored = redis.call('MGET', KEYS[1], KEYS[2])
local owner = tonumber(stored[1])
if not owner then
  return {3}
end
if owner > tonumber(ARGV[1]) then
  return {0, owner}
end
local applied = tonumber(stored[2]) or -1
if tonumber(ARGV[2]) <= applied then
  return {2, applied}
end
redis.call('SET', KEYS[2], ARGV[2])
local n = tonumber(ARGV[3])
if n > 0 then
  redis.call('HSET', KEYS[3], unpack(ARGV, 4, 3 + 2 * n))
  redis.call('ZADD', KEYS[4], unpack(ARGV, 4 + 2 * n, 3 + 4 * n))
end
return {1}
