"""Schemathesis hooks for tests/e2e/test_bad_input.py (loaded with SCHEMATHESIS_HOOKS=tests.e2e.schemathesis_hooks).

One extra check: every refusal (4xx) explains itself with a JSON `detail` a person can read: a non-empty
string, a `{"code", "message"}` object, or FastAPI's list of validation errors each with a `msg`.
"""
from __future__ import annotations

import json

import schemathesis


def _explains(detail: object) -> bool:
    if isinstance(detail, str):
        return bool(detail.strip())
    if isinstance(detail, dict):
        message = detail.get("message")
        return isinstance(message, str) and bool(message.strip())
    if isinstance(detail, list):
        return bool(detail) and all(isinstance(item, dict) and isinstance(item.get("msg"), str) and item["msg"]
                                    for item in detail)
    return False


@schemathesis.check
def refusal_has_a_message(ctx, response, case) -> None:
    if not 400 <= response.status_code < 500:
        return
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        raise AssertionError(f"{response.status_code} without a JSON body: {response.content[:200]!r}") from None
    detail = body.get("detail") if isinstance(body, dict) else None
    if not _explains(detail):
        raise AssertionError(f"{response.status_code} without a readable `detail` message: {body!r:.300}")
