-- ARGV: P, id, lease_ms -> new expiry ms as string, or false when the allocation is gone
local akey = P .. 'alloc:' .. ARGV[2]
if redis.call('EXISTS', akey) == 0 then return false end
local exp = string.format('%.0f', now_ms() + tonumber(ARGV[3]))
redis.call('ZADD', P .. 'leases', exp, ARGV[2])
redis.call('HSET', akey, 'lease_expires_ms', exp)
return exp
