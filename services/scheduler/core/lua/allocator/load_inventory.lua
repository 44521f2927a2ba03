-- Replace the node set; allocations are kept and re-counted, vanished nodes that still hold
-- allocations stay as Down ('gone') until those are released.
-- ARGV: P, JSON [{name, status, mem, cpu_m, labels, pools: [{type, count, mem, idx}]}] -> node count
local data = cjson.decode(ARGV[2])
for _, cls in ipairs(redis.call('SMEMBERS', P .. 'classes')) do redis.call('DEL', P .. 'idx:' .. cls) end
redis.call('DEL', P .. 'classes', P .. 'idx:all')
local seen = {}
for _, nd in ipairs(data) do
  local n = nd.name
  local nk = nkey(n)
  seen[n] = true
  local used, used_idx, memu, cpuu = {}, {}, 0, 0
  for _, id in ipairs(redis.call('SMEMBERS', nk .. ':allocs')) do
    local a = redis.call('HMGET', P .. 'alloc:' .. id, 'gpu_type', 'gpu_count', 'gpu_indices', 'memory_bytes', 'cpu_millis')
    if a[1] then
      if a[1] ~= '' then
        used[a[1]] = (used[a[1]] or 0) + tonumber(a[2])
        used_idx[a[1]] = used_idx[a[1]] or {}
        for _, x in ipairs(split(a[3])) do used_idx[a[1]][x] = true end
      end
      memu = memu + tonumber(a[4])
      cpuu = cpuu + tonumber(a[5])
    else
      redis.call('SREM', nk .. ':allocs', id)
    end
  end
  local newtypes = {}
  for _, p in ipairs(nd.pools) do newtypes[p.type] = true end
  for _, t in ipairs(split(redis.call('HGET', nk, 'types'))) do
    if not newtypes[t] then
      redis.call('HDEL', nk, 'g:' .. t .. ':total', 'g:' .. t .. ':alloc', 'g:' .. t .. ':mem', 'g:' .. t .. ':idx')
      redis.call('DEL', nk .. ':free:' .. t)
    end
  end
  local override = redis.call('HGET', nk, 'override') or ''
  local types = {}
  for _, p in ipairs(nd.pools) do
    local t = p.type
    types[#types + 1] = t
    redis.call('HSET', nk, 'g:' .. t .. ':total', p.count, 'g:' .. t .. ':mem', p.mem,
      'g:' .. t .. ':idx', p.idx, 'g:' .. t .. ':alloc', used[t] or 0)
    local fk = nk .. ':free:' .. t
    redis.call('DEL', fk)
    local ui = used_idx[t] or {}
    for _, x in ipairs(split(p.idx)) do
      if not ui[x] then redis.call('ZADD', fk, tonumber(x), x) end
    end
    redis.call('SADD', P .. 'classes', t .. '|' .. p.mem)
  end
  redis.call('HSET', nk, 'status', nd.status, 'override', override, 'eff', effective(nd.status, override),
    'gone', '0', 'mem_total', nd.mem, 'cpu_total', nd.cpu_m, 'labels', nd.labels,
    'types', table.concat(types, ','), 'mem_alloc', string.format('%.0f', memu),
    'cpu_alloc', string.format('%.0f', cpuu))
  redis.call('SADD', P .. 'nodes', n)
  reindex(n)
end
for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  if not seen[n] then
    if redis.call('SCARD', nkey(n) .. ':allocs') > 0 then
      redis.call('HSET', nkey(n), 'status', 'Down', 'eff', 'Down', 'gone', '1')
      reindex(n)
    else
      drop_node(n)
    end
  end
end
return #data
