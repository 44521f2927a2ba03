-- ARGV: P, workload, status -> 1, or 0 for an unknown workload ('waiting' puts it back in the order)
local ek = ekey(ARGV[2])
local h = redis.call('HMGET', ek, 'priority', 'rank')
if not h[1] then return 0 end
redis.call('HSET', ek, 'status', ARGV[3])
if ARGV[3] == 'waiting' then
  redis.call('ZADD', qkey(h[1]), h[2], ARGV[2])
else
  redis.call('ZREM', qkey(h[1]), ARGV[2])
end
return 1
