"""Library settings: the shared ones plus the catalog it seeds on first start (AVATAR_LIBRARY_SEED_CATALOG)."""
from __future__ import annotations

from pathlib import Path

from services.kit.settings import Settings

REFERENCE_CATALOG = Path(__file__).resolve().parents[2] / "components" / "catalog.json"


class LibrarySettings(Settings):
    # JSON list of component registrations, loaded when the library is empty; "" starts empty.
    library_seed_catalog: str = str(REFERENCE_CATALOG)
