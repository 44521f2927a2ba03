-- ARGV: P -> per node {name, node hash, {type, free index count, ...}, allocation count}
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', P .. 'nodes')) do
  local nk = nkey(n)
  local z = {}
  for _, t in ipairs(split(redis.call('HGET', nk, 'types'))) do
    z[#z + 1] = t
    z[#z + 1] = redis.call('ZCARD', nk .. ':free:' .. t)
  end
  out[#out + 1] = {n, redis.call('HGETALL', nk), z, redis.call('SCARD', nk .. ':allocs')}
end
return out
