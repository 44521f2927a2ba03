"""Password hashing with argon2id (argon2-cffi's PasswordHasher at its current RFC 9106 parameters).

Hashing takes tens of milliseconds of CPU on purpose; it runs in a worker thread so that the gateway's
event loop (which also proxies every other request) never waits for it.
"""
from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Checked:
    ok: bool
    new_hash: str | None = None  # set when the stored hash used older parameters: store this one instead


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not anyone's password: verified when the user is unknown")


def _verify(stored: str | None, password: str) -> Checked:
    # an unknown user (or one with no password) costs the same as a wrong password, so the answer's
    # timing does not tell whether the user exists
    target = stored or _dummy_hash()
    try:
        _hasher.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Checked(False)
    if stored is None:
        return Checked(False)
    return Checked(True, _hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


async def verify_password(stored: str | None, password: str) -> Checked:
    return await asyncio.to_thread(_verify, stored, password)


def warm() -> None:
    """Compute the dummy hash now (at start), not in the first failed login's timing."""
    _dummy_hash()
