"""Free-form JSON objects (params, env_config, reward_params) with a bounded depth and size.

Unbounded, such a field takes a value nested hundreds of levels deep that is stored fine and then cannot
be serialised again (pydantic stops at its serialisation depth), so every later read of the object is a
500. Every free-form field is therefore one of the two types below, checked wherever it is validated:
- `BoundedJson`: what a client sends in one field: at most `MAX_KEYS` keys, `MAX_DEPTH` levels and
  `MAX_BYTES` as JSON.
- `ComposedJson`: what the platform builds from checked parts (a library component's default params
  merged with a placement's own, an App's env_config plus the simulation seed), what it stored before
  these bounds, and what the broker carries: a depth and a size no composition of request bodies
  reaches, so composing never fails and what was readable stays readable, yet below the depth
  (about 250 levels with the envelope around it) at which pydantic can no longer serialise it.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

MAX_DEPTH = 32
MAX_KEYS = 200
MAX_BYTES = 64 * 1024
MAX_COMPOSED_DEPTH = 200
MAX_COMPOSED_BYTES = 4 * 1024 * 1024
_SHOWN_PATH = 120  # characters of the offending path a message quotes


def too_deep(value: Any, max_depth: int) -> list[str | int] | None:
    """The path to the first object or array nested deeper than `max_depth` levels (the value itself is
    level 1), or None. Iterative, so any depth the JSON parser produced can be measured; one level at a
    time without paths, since only a refusal needs to say where."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(max_depth):
        below: list[Any] = []
        for item in level:
            below.extend(child for child in (item.values() if isinstance(item, dict) else item)
                         if isinstance(child, (dict, list)))
        if not below:
            return None
        level = below
    return _path_below(value, max_depth)


def _path_below(value: Any, max_depth: int) -> list[str | int]:
    """The first path (depth first) to a container below `max_depth` levels, which must exist."""
    pending: list[tuple[Any, int, tuple[str | int, ...]]] = [(value, 1, ())]
    while pending:
        item, depth, path = pending.pop()
        if depth > max_depth:
            return list(path)
        children = item.items() if isinstance(item, dict) else enumerate(item)
        pending.extend((child, depth + 1, (*path, key)) for key, child in reversed(list(children))
                       if isinstance(child, (dict, list)))
    raise AssertionError("no container below the limit")


def show_path(path: list[str | int]) -> str:
    """`a.b[3].c`, cut short: a message names where, it does not echo the whole input."""
    text = "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")
    return text if len(text) <= _SHOWN_PATH else text[:_SHOWN_PATH] + "…"


def _bounded(max_depth: int, max_bytes: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def check(value: dict[str, Any]) -> dict[str, Any]:
        path = too_deep(value, max_depth)
        if path is not None:
            raise PydanticCustomError("json_too_deep", "JSON nested deeper than {max_depth} levels (at {at})",
                                      {"max_depth": max_depth, "at": show_path(path)})
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode())
        if size > max_bytes:
            raise PydanticCustomError("json_too_large", "JSON of {size} bytes is larger than {max_bytes} bytes",
                                      {"size": size, "max_bytes": max_bytes})
        return value
    return check


def _documented(max_depth: int, max_bytes: int) -> Any:
    """The bounds in the JSON Schema too (its own keywords cannot say "depth"), so a client can read them."""
    return Field(json_schema_extra={"x-max-depth": max_depth, "x-max-bytes": max_bytes})


def bounded_object(max_keys: int, max_depth: int, max_bytes: int) -> Any:
    """A JSON object type of at most `max_keys` keys, `max_depth` levels and `max_bytes` bytes."""
    # The key count comes before the validator: after it, pydantic would document it as a string's maxLength.
    return Annotated[dict[str, Any], Field(max_length=max_keys), AfterValidator(_bounded(max_depth, max_bytes)),
                     _documented(max_depth, max_bytes)]


BoundedJson = bounded_object(MAX_KEYS, MAX_DEPTH, MAX_BYTES)
ComposedJson = Annotated[dict[str, Any], AfterValidator(_bounded(MAX_COMPOSED_DEPTH, MAX_COMPOSED_BYTES)),
                         _documented(MAX_COMPOSED_DEPTH, MAX_COMPOSED_BYTES)]
