-- ARGV: P -> ids of the allocations whose lease has expired (Redis clock)
return redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', now_ms())
