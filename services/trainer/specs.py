"""The ready specs a submission is built from, parsed once per process.

A spec version never changes once recorded (`record_spec` keeps the first copy), so a parsed spec can be
reused; what can change is whether its App is still ready and which version is its latest. The submit
statement checks exactly that as it inserts (`store.submitted_request`), and a submission built from a
stale entry is refused by it and rebuilt from a fresh read: the cache never decides anything alone.
"""
from __future__ import annotations

from collections import OrderedDict

from contracts.spec import AppSpec
from services.trainer import store


class ReadySpecs:
    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._specs: OrderedDict[tuple[str, str | None], AppSpec] = OrderedDict()

    async def find(self, conn: store.Conn, app_id: str, version: str | None, *, fresh: bool = False
                   ) -> AppSpec | None:
        """The spec a submission naming `version` (None: the latest) of `app_id` is built from, or None
        when the App is not ready at that version."""
        key = (app_id, version)
        if not fresh and (spec := self._specs.get(key)) is not None:
            self._specs.move_to_end(key)
            return spec
        spec = await store.find_spec(conn, app_id, version)
        if spec is None:
            self._specs.pop(key, None)
            return None
        self._specs[key] = spec
        self._specs.move_to_end(key)
        while len(self._specs) > self._size:
            self._specs.popitem(last=False)
        return spec
