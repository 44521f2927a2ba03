"""Login throttling: failed logins per user and per address in a moving window, kept in Redis.

Each attempt is a member of a sorted set scored by its time. An attempt is *reserved* before the password
is checked, in one Lua script that trims the window, counts and adds only when under the limit, so
concurrent guesses cannot all pass a read-then-write check while argon2 runs; a right password takes
its reservation back. A key pauses logins once it holds the maximum within the window, until the oldest
attempt leaves it (that is the Retry-After). Shared by every gateway process, so running several does not
multiply the attempts an attacker gets.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

from redis.asyncio import Redis


@dataclass(frozen=True)
class Pause:
    scope: str          # "user" or "address"
    retry_after: int    # seconds


def _digest(value: str) -> str:
    # user names and addresses are the client's text: hashed, they make short, safe key names
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class LoginThrottle:
    def __init__(self, redis: Redis, prefix: str, *, per_user: int, per_address: int, window_seconds: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.limits = {"user": per_user, "address": per_address}
        self.window = window_seconds
        self._script = redis.register_script(_RESERVE)

    @classmethod
    def of(cls, redis: Redis, settings) -> "LoginThrottle":
        return cls(redis, settings.redis_prefix, per_user=settings.login_max_failures_per_user,
                   per_address=settings.login_max_failures_per_address,
                   window_seconds=settings.login_failure_window_seconds)

    def _keys(self, user: str, address: str) -> dict[str, str]:
        return {"user": f"{self.prefix}gateway:login-failures:user:{_digest(user.casefold())}",
                "address": f"{self.prefix}gateway:login-failures:address:{_digest(address)}"}

    async def reserve(self, user: str, address: str) -> "Reservation | Pause":
        """Count this attempt as a failure before it is checked, or the pause when a key is at its limit
        (then nothing is counted). The caller gives it back with `release` once the password was right."""
        keys = self._keys(user, address)
        member = f"{time.time():.6f}:{secrets.token_hex(8)}"
        scope, wait = await self._script(keys=list(keys.values()),
                                         args=[self.window, self.limits["user"], self.limits["address"], member])
        if int(scope):
            return Pause("user" if int(scope) == 1 else "address", int(wait))
        return Reservation(tuple(keys.values()), member)

    async def release(self, reservation: "Reservation") -> None:
        """The attempt was not a failure (the password was right): it no longer counts."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in reservation.keys:
                pipe.zrem(key, reservation.member)
            await pipe.execute()

    async def succeeded(self, user: str, reservation: "Reservation") -> None:
        """A login: the user's own count starts again (the address's does not: it may be guessing other
        users), and this attempt leaves the address's count."""
        await self.release(reservation)
        await self.redis.delete(self._keys(user, "")["user"])


@dataclass(frozen=True)
class Reservation:
    keys: tuple[str, ...]
    member: str


# KEYS: the user's key, the address's. ARGV: window seconds, user limit, address limit, member.
# Returns {0, 0} after adding the member to both keys, or {1 (user) | 2 (address), retry_after} without
# adding it. The server's clock is used so every gateway process measures the window alike.
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[1])
local worst_scope, worst_wait = 0, 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 1]) then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local wait = math.max(1, math.ceil(tonumber(oldest[2]) + window - now))
    if wait > worst_wait then worst_scope, worst_wait = i, wait end
  end
end
if worst_scope > 0 then return {worst_scope, worst_wait} end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[4])
  redis.call('EXPIRE', key, math.ceil(window) + 1)
end
return {0, 0}
"""
