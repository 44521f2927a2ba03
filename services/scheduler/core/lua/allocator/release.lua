-- ARGV: P, id, only_if_expired ('1'|'0')  -> 1 released, 0 unknown/already released, -1 lease live
local id = ARGV[2]
local akey = P .. 'alloc:' .. id
if redis.call('EXISTS', akey) == 0 then return 0 end
if ARGV[3] == '1' then
  local exp = redis.call('ZSCORE', P .. 'leases', id)
  if exp and tonumber(exp) > now_ms() then return -1 end
end
local a = redis.call('HMGET', akey, 'node', 'gpu_type', 'gpu_count', 'gpu_indices', 'memory_bytes',
  'cpu_millis', 'workload_id')
local n = a[1]
local nk = nkey(n)
if redis.call('EXISTS', nk) == 1 then
  local t, cnt = a[2], tonumber(a[3])
  if t ~= '' and cnt > 0 and redis.call('HEXISTS', nk, 'g:' .. t .. ':total') == 1 then
    redis.call('HINCRBY', nk, 'g:' .. t .. ':alloc', -cnt)
    local valid = {}
    for _, x in ipairs(split(redis.call('HGET', nk, 'g:' .. t .. ':idx'))) do valid[x] = true end
    for _, x in ipairs(split(a[4])) do
      if valid[x] then redis.call('ZADD', nk .. ':free:' .. t, tonumber(x), x) end
    end
  end
  if a[5] ~= '0' then redis.call('HINCRBY', nk, 'mem_alloc', '-' .. a[5]) end
  if a[6] ~= '0' then redis.call('HINCRBY', nk, 'cpu_alloc', '-' .. a[6]) end
  redis.call('SREM', nk .. ':allocs', id)
  if redis.call('HGET', nk, 'gone') == '1' and redis.call('SCARD', nk .. ':allocs') == 0 then
    drop_node(n)
  else
    reindex(n)
  end
end
redis.call('DEL', akey)
redis.call('ZREM', P .. 'leases', id)
redis.call('SREM', P .. 'workload:' .. a[7] .. ':allocs', id)
return 1
