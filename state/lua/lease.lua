-- lease.lua takes a named lease for a holder, or renews it when the holder
-- already has it. Another holder gets it only after it lapsed.
--
-- KEYS[1] <prefix>:lease:<name>  the holder's name, expiring with the lease
-- ARGV[1] holder
-- ARGV[2] ttl  milliseconds
--
-- Returns 1 when the holder has the lease afterwards, 0 when another has it.
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
