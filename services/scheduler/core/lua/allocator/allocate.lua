-- Reserve a demand on one node, best fit or the first listed node that fits; idempotent per id.
-- ARGV: P, id, workload, component, gpu_type, gpu_count, min_gpu_mem, mem(str), cpu_millis(str),
--       lease_ms, expected_end, order ('best_fit'|'listed'), listed nodes (comma list or '')
-- -> {'ok', alloc hash} | {'existing', alloc hash} | {'none'}
local id = ARGV[2]
local akey = P .. 'alloc:' .. id
if redis.call('EXISTS', akey) == 1 then
  return {'existing', redis.call('HGETALL', akey)}
end
local gtype, gcount, minmem = ARGV[5], tonumber(ARGV[6]), tonumber(ARGV[7])
local mem, cpu = tonumber(ARGV[8]), tonumber(ARGV[9])
local any = (gtype == 'any')

local function better(a, b)
  if b == nil then return true end
  if a[1] ~= b[1] then return a[1] < b[1] end
  if a[2] ~= b[2] then return lt(a[2], b[2]) end
  return lt(a[3], b[3])
end
local function base_fits(n)
  local h = redis.call('HMGET', nkey(n), 'eff', 'mem_total', 'mem_alloc', 'cpu_total', 'cpu_alloc')
  if h[1] ~= 'Active' then return false end
  if tonumber(h[2]) - tonumber(h[3]) < mem then return false end
  if tonumber(h[4]) - tonumber(h[5]) < cpu then return false end
  return true
end
local function accepts(t, tmem)
  if (not any) and t ~= gtype then return false end
  return tonumber(tmem or '0') >= minmem
end
local function node_candidate(n)
  if not base_fits(n) then return nil end
  local nk = nkey(n)
  local types = split(redis.call('HGET', nk, 'types'))
  if gcount == 0 then
    local tot = 0
    for _, t in ipairs(types) do tot = tot + gfree(n, t) end
    return {tot, n, ''}
  end
  local c = nil
  for _, t in ipairs(types) do
    if accepts(t, redis.call('HGET', nk, 'g:' .. t .. ':mem')) then
      local f = gfree(n, t)
      if f >= gcount then
        local cand = {f - gcount, n, t}
        if better(cand, c) then c = cand end
      end
    end
  end
  return c
end

local best = nil
if ARGV[13] ~= '' then
  for _, n in ipairs(split(ARGV[13])) do
    local c = node_candidate(n)
    if c then
      if ARGV[12] == 'listed' then best = c; break end
      if better(c, best) then best = c end
    end
  end
elseif gcount == 0 then
  local off = 0
  while best == nil do
    local batch = redis.call('ZRANGE', P .. 'idx:all', off, off + 63, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      if base_fits(batch[i]) then best = {tonumber(batch[i + 1]), batch[i], ''}; break end
    end
    off = off + 64
  end
else
  for _, cls in ipairs(redis.call('SMEMBERS', P .. 'classes')) do
    local bar = string.find(cls, '|', 1, true)
    local t, tmem = string.sub(cls, 1, bar - 1), string.sub(cls, bar + 1)
    if accepts(t, tmem) then
      local off, done = 0, false
      while not done do
        local batch = redis.call('ZRANGEBYSCORE', P .. 'idx:' .. cls, gcount, '+inf', 'WITHSCORES', 'LIMIT', off, 32)
        if #batch == 0 then break end
        for i = 1, #batch, 2 do
          local cand = {tonumber(batch[i + 1]) - gcount, batch[i], t}
          if best ~= nil and not better(cand, best) then done = true; break end
          if base_fits(batch[i]) then best = cand; done = true; break end
        end
        off = off + 32
      end
    end
  end
end
if best == nil then return {'none'} end

local n, t = best[2], best[3]
local nk = nkey(n)
local indices = {}
if gcount > 0 then
  local popped = redis.call('ZPOPMIN', nk .. ':free:' .. t, gcount)
  for i = 1, #popped, 2 do indices[#indices + 1] = popped[i] end
  redis.call('HINCRBY', nk, 'g:' .. t .. ':alloc', gcount)
end
if mem > 0 then redis.call('HINCRBY', nk, 'mem_alloc', ARGV[8]) end
if cpu > 0 then redis.call('HINCRBY', nk, 'cpu_alloc', ARGV[9]) end
reindex(n)
return record(akey, id, n, t, indices)
