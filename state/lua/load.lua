-- load.lua reads entity states, and the entities whose timers are due with
-- their states, in one step. It writes nothing. due.lua comes before it.
--
-- KEYS[1] <prefix>:{<scope>}:timers:first  zset timer bucket -> at most its
--                                          first due (see apply.lua)
-- ARGV[1] base   "<prefix>:{<scope>}:", the start of the partition's keys;
--                timer buckets are <base>timers:<bucket>, zset entity key
--                -> due (Unix ms)
-- ARGV[2] dueBy  timers due at or before this (Unix ms) are read; <= 0: none
-- ARGV[3] limit  at most this many due entities; <= 0: none
-- ARGV[4..] entity keys whose states are wanted
--
-- Returns {nextDue, {due entity keys, earliest first}, {states}}: states
-- holds the state (or nil) of each of ARGV[4..] and then of each due key.
local base = ARGV[1]
local dueBy = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])

local due = dueTimers(KEYS[1], base, dueBy, limit)

local found = states(base, 4, #ARGV, due)

-- The earliest timer: apply.lua and claim.lua leave the index's first
-- score equal to it (they correct the entries before it), and only they
-- write timers.
local nextDue = 0
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then nextDue = tonumber(first[2]) end
return {nextDue, due, found}
