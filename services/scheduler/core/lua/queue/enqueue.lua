-- ARGV: P, workload, priority, rank, submitted_at, requester, name, resources, attributes
-- -> 1 added, 0 already known
local ek = ekey(ARGV[2])
if redis.call('EXISTS', ek) == 1 then return 0 end
redis.call('HSET', ek, 'workload_id', ARGV[2], 'priority', ARGV[3], 'rank', ARGV[4],
  'submitted_at', ARGV[5], 'requester', ARGV[6], 'name', ARGV[7], 'resources', ARGV[8],
  'attributes', ARGV[9], 'status', 'waiting')
redis.call('ZADD', qkey(ARGV[3]), ARGV[4], ARGV[2])
return 1
