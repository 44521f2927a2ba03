"""Which platform role an OIDC user gets from their IdP groups (pure: no I/O).

The mapping is configuration (AVATAR_OIDC_ROLE_MAP, e.g. {"avatar-admins": "admin", "ml-team": "researcher"}).
A user in several mapped groups gets the highest of their roles; a user in none gets the default role, and
with no default role (None) such a user may not log in at all.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from services.gateway.identity import RANK
from services.kit.auth import Role


def groups_from_claim(value: object) -> list[str]:
    """The group names an IdP sent: a list of strings (the usual shape) or one string (some IdPs send a
    single group that way); anything else in the claim is not a group name and is ignored."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, (list, tuple)):
        return [group for group in value if isinstance(group, str) and group]
    return []


def role_for(groups: Iterable[str], role_map: Mapping[str, Role], default: Role | None) -> Role | None:
    """The role of a user in `groups`: the highest mapped one, else `default`; None means refused.

    Group names are compared exactly (IdPs treat them case-sensitively, and "Admins" ≠ "admins" there too)."""
    mapped = [role_map[group] for group in groups if group in role_map]
    if not mapped:
        return default
    return max(mapped, key=RANK.__getitem__)
