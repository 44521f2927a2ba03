-- Loaded in front of every allocator script (allocator.py has the key layout).
-- ARGV[1] is the key prefix P in every script.
local P = ARGV[1]
local function nkey(n) return P .. 'node:' .. n end
local function split(s)
  local out = {}
  if not s or s == '' then return out end
  for x in string.gmatch(s, '[^,]+') do out[#out + 1] = x end
  return out
end
local function lt(a, b)  -- bytewise, like Redis member order and Python str order
  local la, lb = #a, #b
  local m = la < lb and la or lb
  for i = 1, m do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return la < lb
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function gfree(n, t)
  local h = redis.call('HMGET', nkey(n), 'g:' .. t .. ':total', 'g:' .. t .. ':alloc')
  if not h[1] then return 0 end
  local f = tonumber(h[1]) - tonumber(h[2] or 0)
  local z = redis.call('ZCARD', nkey(n) .. ':free:' .. t)
  if z < f then f = z end
  if f < 0 then f = 0 end
  return f
end
local function effective(status, override)
  if status == 'Down' or override == 'Down' then return 'Down' end
  if status == 'Drain' or override == 'Drain' then return 'Drain' end
  return 'Active'
end
local function reindex(n)
  local nk = nkey(n)
  local h = redis.call('HMGET', nk, 'eff', 'types')
  local active = (h[1] == 'Active')
  local total = 0
  for _, t in ipairs(split(h[2])) do
    local f = gfree(n, t)
    total = total + f
    local ik = P .. 'idx:' .. t .. '|' .. (redis.call('HGET', nk, 'g:' .. t .. ':mem') or '0')
    if active then redis.call('ZADD', ik, f, n) else redis.call('ZREM', ik, n) end
  end
  if active then redis.call('ZADD', P .. 'idx:all', total, n) else redis.call('ZREM', P .. 'idx:all', n) end
end
local function drop_node(n)
  local nk = nkey(n)
  for _, t in ipairs(split(redis.call('HGET', nk, 'types'))) do
    redis.call('ZREM', P .. 'idx:' .. t .. '|' .. (redis.call('HGET', nk, 'g:' .. t .. ':mem') or '0'), n)
    redis.call('DEL', nk .. ':free:' .. t)
  end
  redis.call('ZREM', P .. 'idx:all', n)
  redis.call('DEL', nk, nk .. ':allocs')
  redis.call('SREM', P .. 'nodes', n)
end
-- record an allocation taken on node n (ALLOCATE and RESTORE share ARGV 3,4,8,9,10,11)
local function record(akey, id, n, t, indices)
  local now = now_ms()
  local exp = now + tonumber(ARGV[10])
  redis.call('HSET', akey, 'id', id, 'workload_id', ARGV[3], 'component_id', ARGV[4], 'node', n,
    'gpu_type', t, 'gpu_count', tostring(#indices), 'gpu_indices', table.concat(indices, ','),
    'memory_bytes', ARGV[8], 'cpu_millis', ARGV[9], 'created_ms', string.format('%.0f', now),
    'lease_expires_ms', string.format('%.0f', exp), 'expected_end', ARGV[11])
  redis.call('ZADD', P .. 'leases', exp, id)
  redis.call('SADD', nkey(n) .. ':allocs', id)
  redis.call('SADD', P .. 'workload:' .. ARGV[3] .. ':allocs', id)
  return {'ok', redis.call('HGETALL', akey)}
end
