-- ARGV: P, workload, target, 'before'|'after'
-- -> 1 moved, 0 workload missing/not waiting, -1 target missing/not waiting, -2 same workload
local w, target = ARGV[2], ARGV[3]
if w == target then return -2 end
local wh = redis.call('HMGET', ekey(w), 'priority', 'status')
if not wh[1] or wh[2] ~= 'waiting' then return 0 end
local th = redis.call('HMGET', ekey(target), 'priority', 'status')
if not th[1] or th[2] ~= 'waiting' then return -1 end
local c = th[1]
local qk = qkey(c)
redis.call('ZREM', qkey(wh[1]), w)
local function neighbours()
  local r = redis.call('ZRANK', qk, target)
  local tr = tonumber(redis.call('ZSCORE', qk, target))
  local other = nil
  if ARGV[4] == 'before' then
    if r > 0 then other = tonumber(redis.call('ZRANGE', qk, r - 1, r - 1, 'WITHSCORES')[2]) end
  else
    local nx = redis.call('ZRANGE', qk, r + 1, r + 1, 'WITHSCORES')
    if #nx > 0 then other = tonumber(nx[2]) end
  end
  return tr, other
end
local tr, other = neighbours()
if other ~= nil and math.abs(tr - other) < 1e-6 then
  local all = redis.call('ZRANGE', qk, 0, -1, 'WITHSCORES')
  local count = #all / 2
  local first, last = tonumber(all[2]), tonumber(all[#all])
  local step = 1e-3
  if count > 1 and (last - first) / (count - 1) > step then step = (last - first) / (count - 1) end
  for i = 1, #all, 2 do
    local rank = first + ((i - 1) / 2) * step
    redis.call('ZADD', qk, rank, all[i])
    redis.call('HSET', ekey(all[i]), 'rank', string.format('%.17g', rank))
  end
  tr, other = neighbours()
end
local rank
if other == nil then
  if ARGV[4] == 'before' then rank = tr - 1.0 else rank = tr + 1.0 end
else
  rank = (tr + other) / 2
end
redis.call('ZADD', qk, rank, w)
redis.call('HSET', ekey(w), 'priority', c, 'rank', string.format('%.17g', rank))
return 1
