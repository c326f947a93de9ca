-- shopclaim.lua gives the replica that just took the reporter lease a new
-- fencing token for the shop-level rules' state, and makes it the owner:
-- the state's writes from any earlier holder are refused from now on.
--
-- KEYS[1] <prefix>:{shoprules}:owner  fencing token of the owner
-- KEYS[2] <prefix>:{shoprules}:token  last token given out
--
-- Returns the new token.
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token)
return token
