-- ARGV: P, workload -> 1 removed, 0 unknown
local ek = ekey(ARGV[2])
local c = redis.call('HGET', ek, 'priority')
if not c then return 0 end
redis.call('ZREM', qkey(c), ARGV[2])
redis.call('DEL', ek)
return 1
