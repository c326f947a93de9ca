-- budget.lua is a receiver's sending budget, shared by every notifier
-- replica and kept across restarts: the vendor counts messages per robot,
-- whoever sends them. A sorted set holds the send times within the
-- longest window.
--
-- KEYS[1] <prefix>:{notify.<receiver>}:sends  zset send id -> send time (ms)
-- ARGV[1] now      wall clock, ms
-- ARGV[2] id       a unique id to record a send under; "" only reads
-- ARGV[3] longest  the longest window, ms (also the key's TTL)
-- ARGV[4..]        the limits, as pairs: messages, window (ms)
--
-- Returns {taken, available, wait}: taken is 1 when the send was recorded;
-- available is how many sends the budget allowed before it; wait is, when
-- none was, the ms until one is.
local now = tonumber(ARGV[1])
local longest = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - longest)
local avail = 1000000000
local wait = 0
for i = 4, #ARGV, 2 do
  local n = tonumber(ARGV[i])
  local per = tonumber(ARGV[i + 1])
  local inwin = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. (now - per), '+inf', 'WITHSCORES')
  local count = #inwin / 2
  if n - count < avail then
    avail = n - count
  end
  if count >= n then
    -- One slot opens when the (count-n+1)th oldest send leaves the window.
    local w = tonumber(inwin[2 * (count - n + 1)]) + per - now
    if w > wait then
      wait = w
    end
  end
end
if avail < 0 then
  avail = 0
end
if ARGV[2] ~= '' and avail > 0 then
  redis.call('ZADD', KEYS[1], now, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], longest)
  return {1, avail, 0}
end
return {0, avail, wait}
