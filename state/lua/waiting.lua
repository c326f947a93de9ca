-- waiting.lua counts the buyers waiting in each of a partition's shops and
-- finds the earliest wait start, over every bucket of the shop's waiting
-- set, without handing the buckets to the client. It writes nothing.
--
-- KEYS[1] <prefix>:{<scope>}:wl  hash shop -> level of its waiting set
-- ARGV[1] base  "<prefix>:{<scope>}:", the start of the partition's keys
-- ARGV[2..] shops
--
-- Returns {count, earliest start (Unix ms, 0 when none)} per shop, flat, in
-- the order of ARGV[2..]. The buckets of a shop at level L are
-- <base>w:<shop> (L = 0) or <base>w:<shop>:<b>, b < 2^L (layout.go waitKey).
local base = ARGV[1]
local out = {}
for s = 2, #ARGV, 1000 do
  local last = math.min(s + 999, #ARGV)
  local levels = redis.call('HMGET', KEYS[1], unpack(ARGV, s, last))
  for k = s, last do
    local shop = ARGV[k]
    local level = tonumber(levels[k - s + 1]) or 0
    local count, earliest = 0, 0
    for b = 0, 2 ^ level - 1 do
      local key = base .. 'w:' .. shop
      if level > 0 then key = key .. ':' .. b end
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if first[2] then
        count = count + redis.call('ZCARD', key)
        local start = tonumber(first[2])
        if earliest == 0 or start < earliest then earliest = start end
      end
    end
    out[#out + 1] = count
    out[#out + 1] = earliest
  end
end
return out
