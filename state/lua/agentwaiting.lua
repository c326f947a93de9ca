-- agentwaiting.lua lists the buyers in some of a partition's waiting sets
-- (an agent's, WaitOp.Set) with the start of each wait, earliest first,
-- over every bucket of each set. It writes nothing.
--
-- KEYS[1] <prefix>:{<scope>}:wl  hash set -> level of its waiting set
-- ARGV[1] base  "<prefix>:{<scope>}:", the start of the partition's keys
-- ARGV[2] limit: at most this many buyers per set, the earliest waits
-- ARGV[3..] sets
--
-- Returns per set, in the order of ARGV[3..]: n, then n x (buyer, start
-- in Unix ms as a string), flat. The buckets of a set at level L are
-- <base>w:<set> (L = 0) or <base>w:<set>:<b>, b < 2^L (layout.go waitKey).
local base, limit = ARGV[1], tonumber(ARGV[2])
local out = {}
local levels = redis.call('HMGET', KEYS[1], unpack(ARGV, 3, #ARGV))
for k = 3, #ARGV do
  local set = ARGV[k]
  local level = tonumber(levels[k - 2]) or 0
  local found = {}
  for b = 0, 2 ^ level - 1 do
    local key = base .. 'w:' .. set
    if level > 0 then key = key .. ':' .. b end
    local m = redis.call('ZRANGE', key, 0, limit - 1, 'WITHSCORES')
    for j = 1, #m, 2 do
      found[#found + 1] = {m[j], tonumber(m[j + 1])}
    end
  end
  table.sort(found, function(x, y)
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[1] < y[1]
  end)
  local n = math.min(#found, limit)
  out[#out + 1] = n
  for j = 1, n do
    out[#out + 1] = found[j][1]
    out[#out + 1] = string.format('%d', found[j][2])
  end
end
return out
