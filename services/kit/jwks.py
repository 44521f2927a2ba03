"""The signing keys a service verifies RS256 tokens with, fetched from the gateway's JWKS and cached.

A set is kept `ttl` seconds (then refetched when next needed). A `kid` the set does not name triggers a
refetch, but at most once per `min_refetch_seconds`: a flood of tokens with made-up kids costs the gateway
one request per interval, not one per token. A lookup that finds the interval not yet over waits for its
end and shares that one fetch, so a token of a key rotated in seconds ago is delayed, not refused.
When a refetch fails, the last set answers for `max_stale` seconds more (tokens live minutes; a gateway
restart must not lock everyone out); with no usable set the caller gets `JwksUnavailable`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

import httpx
import jwt

log = logging.getLogger(__name__)

TTL_SECONDS = 300.0
MIN_REFETCH_SECONDS = 5.0
MAX_STALE_SECONDS = 900.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_KID = 128  # longer kids are refused before any lookup
MAX_KEYS = 50  # a set with more keys than this is not the gateway's

Fetcher = Callable[[], Awaitable[dict[str, Any]]]


class JwksUnavailable(Exception):
    """No set of signing keys could be had: tokens cannot be verified now (not that they are bad)."""


def http_fetcher(url: str, *, timeout: float = FETCH_TIMEOUT_SECONDS) -> Fetcher:
    async def fetch() -> dict[str, Any]:
        # a client per fetch: fetches are minutes apart, and no lifecycle is needed to close it
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()

    return fetch


def parse_keys(document: Any) -> dict[str, Any]:
    """kid -> public key (cryptography object) of every RSA signing key in a JWKS document; keys of
    another type or use, without a kid, or that do not parse are skipped (logged)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    if len(document["keys"]) > MAX_KEYS:
        raise ValueError(f"the JWKS has {len(document['keys'])} keys, more than {MAX_KEYS}")
    keys: dict[str, Any] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if (not isinstance(kid, str) or not kid or len(kid) > MAX_KID or entry.get("kty") != "RSA"
                or entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256"):
            log.debug("JWKS entry skipped: %s", {k: entry.get(k) for k in ("kid", "kty", "use", "alg")})
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm="RS256").key
        except jwt.PyJWTError as exc:
            log.warning("JWKS key %s does not parse: %s", kid, exc)
    return keys


class JwksCache:
    def __init__(self, fetch: Fetcher, *, ttl: float = TTL_SECONDS, min_refetch_seconds: float = MIN_REFETCH_SECONDS,
                 max_stale: float = MAX_STALE_SECONDS, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._fetch = fetch
        self._ttl, self._min_refetch, self._max_stale = ttl, min_refetch_seconds, max_stale
        self._clock, self._sleep = clock, sleep
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None    # when the current set arrived
        self._attempted_at: float | None = None  # when a fetch last started, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def key(self, kid: str) -> Any | None:
        """The public key named `kid`, or None when the gateway does not publish it; JwksUnavailable when
        there is no usable set to tell."""
        now = self._clock()
        if self._fresh(now) and kid in self._keys:
            return self._keys[kid]
        if kid not in self._keys and not self._may_fetch(now) and not self._lock.locked():
            # a kid the set fetched moments ago did not name: most likely the gateway just rotated. Wait
            # for the next allowed fetch (all such lookups share it) rather than refuse a good token.
            await self._sleep(max(0.0, self._attempted_at + self._min_refetch - now))  # type: ignore[operator]
        await self._refresh()
        now = self._clock()
        if self._fetched_at is None or now - self._fetched_at > self._ttl + self._max_stale:
            raise JwksUnavailable("the signing keys (JWKS) could not be fetched")
        return self._keys.get(kid)

    def _fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < self._ttl

    def _may_fetch(self, now: float) -> bool:
        return self._attempted_at is None or now - self._attempted_at >= self._min_refetch

    async def _refresh(self) -> None:
        """Fetch the set unless one was fetched less than the interval ago, or while this lookup waited."""
        attempted = self._attempted_at
        async with self._lock:
            if self._attempted_at != attempted or not self._may_fetch(self._clock()):
                return
            self._attempted_at = self._clock()
            self.fetches += 1
            try:
                keys = parse_keys(await self._fetch())
            except Exception as exc:  # any failure (network, status, body) leaves the last set in place
                log.warning("JWKS fetch failed (%s: %s); keeping the last set", type(exc).__name__, exc)
                return
            self._keys, self._fetched_at = keys, self._clock()
