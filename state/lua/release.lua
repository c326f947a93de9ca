-- release.lua gives a named lease up, if the holder has it.
--
-- KEYS[1] <prefix>:lease:<name>  the holder's name, expiring with the lease
-- ARGV[1] holder
--
-- Returns 1 when released, 0 when the holder did not have it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
