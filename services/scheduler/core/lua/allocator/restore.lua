-- Re-record a known allocation exactly (after Redis lost its data).
-- ARGV: P, id, workload, component, node, gpu_type ('' = none), indices, mem(str), cpu_millis(str),
--       lease_ms, expected_end -> {'ok', alloc hash} | {'existing', alloc hash} | {'none'}
--       | {'conflict', index}: an index is not free (another allocation holds it); nothing is changed
local id = ARGV[2]
local akey = P .. 'alloc:' .. id
if redis.call('EXISTS', akey) == 1 then
  return {'existing', redis.call('HGETALL', akey)}
end
local n, t = ARGV[5], ARGV[6]
local nk = nkey(n)
if redis.call('EXISTS', nk) == 0 then return {'none'} end
local indices = split(ARGV[7])
if t ~= '' and #indices > 0 then
  if redis.call('HEXISTS', nk, 'g:' .. t .. ':total') == 0 then return {'none'} end
  for _, x in ipairs(indices) do
    if not redis.call('ZSCORE', nk .. ':free:' .. t, x) then return {'conflict', x} end
  end
  for _, x in ipairs(indices) do redis.call('ZREM', nk .. ':free:' .. t, x) end
  redis.call('HINCRBY', nk, 'g:' .. t .. ':alloc', #indices)
else
  t = ''
  indices = {}
end
if ARGV[8] ~= '0' then redis.call('HINCRBY', nk, 'mem_alloc', ARGV[8]) end
if ARGV[9] ~= '0' then redis.call('HINCRBY', nk, 'cpu_alloc', ARGV[9]) end
reindex(n)
return record(akey, id, n, t, indices)
