"""Who may change an object someone owns: its owner or an admin (seed 002; AU-01).

Apps and library components have an owner, their creator; everyone with a role reads them. An owner of
None is the platform's own (the seed catalog, or a row whose creator was never recorded): only an admin
changes it, so no token subject can claim it by name.
"""
from __future__ import annotations

from services.kit.errors import Forbidden


def check_may_change(what: str, owner: str | None, user: str, is_admin: bool) -> None:
    """`what` ("app APP-1A2B3C") names the object in the refusal, which names its owner."""
    if is_admin or (owner is not None and user == owner):
        return
    if owner is None:
        raise Forbidden(f"{what} belongs to the platform (no owner); only an admin may change it")
    raise Forbidden(f"{what} belongs to {owner!r}; only its owner or an admin may change it")


def check_may_transfer(what: str, owner: str | None, is_admin: bool) -> None:
    if not is_admin:
        raise Forbidden(f"only an admin may transfer {what} (owned by {owner!r})")
