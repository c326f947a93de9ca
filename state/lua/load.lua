-- load.lua reads entity states, and the entities whose timers are due with
-- their states, in one step. It writes nothing. due.lua comes before it.
--
-- KEYS[1] <prefix>:{<scope>}:timers:first  zset timer bucket -> at most its
--                                          first due (see apply.lua)
-- KEYS[2] <prefix>:{<scope>}:c@old         Unix s until which states of the
--                                          earlier layout may remain (see
--                                          claim.lua)
-- ARGV[1] base    "<prefix>:{<scope>}:", the start of the partition's keys;
--                 timer buckets are <base>timers:<bucket>, zset entity key
--                 -> due (Unix ms); entity states are in the generation
--                 hashes <base>c@<g> (see stateGens in due.lua)
-- ARGV[2] dueBy   timers due at or before this (Unix ms) are read; <= 0: none
-- ARGV[3] limit   at most this many due entities; <= 0: none
-- ARGV[4] now     the partition's clock (Unix s), which picks the generations
-- ARGV[5] period  seconds of a generation of entity states (0: one, forever)
-- ARGV[6] stateTTL seconds an entity state lives after its last write
-- ARGV[7..] entity keys whose states are wanted
--
-- Returns {nextDue, {due entity keys, earliest first}, {states}}: states
-- holds the state (or nil) of each of ARGV[7..] and then of each due key.
local base = ARGV[1]
local dueBy = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local now = tonumber(ARGV[4])

local due = dueTimers(KEYS[1], base, dueBy, limit)

local found = {}
if #ARGV >= 7 or #due > 0 then
  local old = tonumber(redis.call('GET', KEYS[2]))
  local gens = stateGens(base, now, tonumber(ARGV[5]), tonumber(ARGV[6]))
  found = states(base, gens, oldStatesLive(old, now), 7, #ARGV, due)
end

-- The earliest timer: apply.lua and claim.lua leave the index's first
-- score equal to it (they correct the entries before it), and only they
-- write timers.
local nextDue = 0
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then nextDue = tonumber(first[2]) end
return {nextDue, due, found}
