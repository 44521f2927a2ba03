"""Optimistic concurrency for App edits: two people editing one App do not silently overwrite each other.

Every edit of an App's content moves its `revision` (store.touch). A client that read revision N sends
`If-Match: "N"` with its next edit; when someone else edited the App in between, the edit is refused with
409 `edit_conflict` and the current revision, and the client reloads before trying again. An edit without
If-Match (scripts, the demo, older clients) is applied as before.
"""
from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header

from services.kit.auth import Principal
from services.kit.errors import Conflict, Invalid
from services.kit.metrics import Counter

CONFLICTS = Counter("avatar_builder_edit_conflicts_total", "App edits refused because the App changed meanwhile")
# an entity tag as RFC 9110 writes it ("12", W/"12"), or the bare number
_TAG = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')

STALE = ("다른 사용자가 이 App을 먼저 수정했습니다 (현재 리비전 {current}, 편집 기준 리비전 {expected}). "
         "최신 내용을 다시 불러온 뒤 수정하세요")


def parse_if_match(value: str | None) -> int | None:
    """The revision an If-Match header names; None when absent or `*` (any revision)."""
    if value is None or value.strip() in ("", "*"):
        return None
    match = _TAG.match(value)
    if match is None:
        raise Invalid(f'If-Match must name an App revision such as "12", got {value[:40]!r}', code="bad_if_match")
    return int(match.group(1))


def check(app_id: str, current: int, expected: int | None) -> None:
    """Refuse an edit made from an older revision of the App than the one it has now."""
    if expected is not None and expected != current:
        CONFLICTS.inc()
        raise Conflict(STALE.format(current=current, expected=expected), code="edit_conflict", app_id=app_id,
                       revision=current, expected_revision=expected)


async def _if_match(if_match: Annotated[str | None, Header(
        alias="if-match", description='the App revision this edit was made from, e.g. "12" (AppView.revision, '
                                      "TaskView.revision); 409 edit_conflict when the App has moved on")] = None,
                    ) -> int | None:
    return parse_if_match(if_match)


IfMatch = Annotated[int | None, Depends(_if_match)]


def by(user: Principal, revision: int | None) -> dict[str, Any]:
    """An edit command's who-and-from-which-revision fields (commands.AppEdit)."""
    return {"user": user.user, "is_admin": user.is_admin, "expected_revision": revision}
