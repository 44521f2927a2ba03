"""The Lua sources of the Redis adapters, read from lua/<group>/ when an adapter is built.

Each script is its group's prelude.lua (shared helpers) followed by the script's own file, so
one Redis call runs it atomically; redis-py sends it by SHA and loads it on first use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

LUA_DIR = Path(__file__).with_name("lua")


def register_scripts(redis: Any, group: str, names: Iterable[str]) -> dict[str, Any]:
    """redis-py Script objects for lua/<group>/<name>.lua, each with the group's prelude."""
    directory = LUA_DIR / group
    prelude = (directory / "prelude.lua").read_text()
    return {name: redis.register_script(prelude + "\n" + (directory / f"{name}.lua").read_text())
            for name in names}
