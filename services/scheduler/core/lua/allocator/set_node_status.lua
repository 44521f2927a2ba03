-- ARGV: P, node, override ('' clears) -> 1, or 0 for an unknown node
local nk = nkey(ARGV[2])
if redis.call('EXISTS', nk) == 0 then return 0 end
redis.call('HSET', nk, 'override', ARGV[3], 'eff', effective(redis.call('HGET', nk, 'status'), ARGV[3]))
reindex(ARGV[2])
return 1
