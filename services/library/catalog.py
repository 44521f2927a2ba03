"""The seed catalog: the components a new library registers on its first start (CL-01)."""
from __future__ import annotations

import logging
from pathlib import Path

from pydantic import TypeAdapter

from services.library.schemas import ComponentRegistration

log = logging.getLogger(__name__)


def read_catalog(path: Path) -> list[ComponentRegistration]:
    """A broken seed file is a deployment error: it stops the start with the reason."""
    return TypeAdapter(list[ComponentRegistration]).validate_json(path.read_bytes())


def seed_entries(source: str) -> list[ComponentRegistration]:
    """The catalog at `source`; none when no catalog is configured or the file is missing."""
    if not source:
        return []
    path = Path(source)
    if not path.is_file():
        log.warning("seed catalog %s not found; the library starts empty", path)
        return []
    return read_catalog(path)
