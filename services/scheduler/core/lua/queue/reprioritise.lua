-- ARGV: P, workload, new priority -> 1, or 0 for an unknown workload
local ek = ekey(ARGV[2])
local h = redis.call('HMGET', ek, 'priority', 'rank', 'status')
if not h[1] then return 0 end
if h[1] == ARGV[3] then return 1 end
redis.call('HSET', ek, 'priority', ARGV[3])
if h[3] == 'waiting' then
  redis.call('ZREM', qkey(h[1]), ARGV[2])
  redis.call('ZADD', qkey(ARGV[3]), h[2], ARGV[2])
end
return 1
