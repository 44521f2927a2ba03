"""On its first start the library registers the reference components of components/catalog.json."""
import json

import pytest
from pydantic import ValidationError

from services.builder.main import create_app as create_builder
from services.library.main import create_app as create_library
from services.library.settings import REFERENCE_CATALOG, LibrarySettings
from tests.integration.builder.support import call
from tests.support.infra import wait_until
from tests.support.services import running_service

CATALOG = json.loads(REFERENCE_CATALOG.read_text())


def seeded_from(settings, path) -> LibrarySettings:
    return LibrarySettings(**{**settings.model_dump(), "library_seed_catalog": str(path)})


async def test_an_empty_library_seeds_the_reference_catalog_once_and_announces_it(fresh):
    settings = fresh.settings()
    async with running_service(create_library, seeded_from(settings, REFERENCE_CATALOG)) as library, \
            running_service(create_builder, settings) as builder:
        listed = await call(library, "GET", "/components", role="viewer", params={"page_size": 100})
        assert [(c["component_id"], c["name"]) for c in listed["items"]] == [
            (f"CL-REF-{i:03d}", entry["name"]) for i, entry in enumerate(CATALOG, start=1)]
        rl_agent = listed["items"][1]
        assert {k: rl_agent[k] for k in CATALOG[1]} == CATALOG[1]
        assert (rl_agent["created_by"], rl_agent["owner"]) == ("library-seed", None)  # the platform's own

        async def builder_knows_them() -> bool:
            return await builder.platform.pool.fetchval("SELECT count(*) FROM library_components") == len(CATALOG)

        await wait_until(builder_knows_them, timeout=15, message="component.registered of the seed to reach the builder")

    async with running_service(create_library, seeded_from(settings, REFERENCE_CATALOG)) as library:
        assert (await call(library, "GET", "/components", role="viewer"))["total"] == len(CATALOG)


async def test_no_seed_catalog_starts_empty(fresh):
    async with running_service(create_library, seeded_from(fresh.settings(), "")) as library:
        assert (await call(library, "GET", "/components", role="viewer"))["total"] == 0


async def test_a_broken_seed_catalog_stops_the_start_with_the_reason(fresh, tmp_path):
    broken = tmp_path / "catalog.json"
    broken.write_text(json.dumps([{**CATALOG[0], "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "lots"}}]))
    with pytest.raises(ValidationError, match="invalid memory value 'lots'"):
        async with running_service(create_library, seeded_from(fresh.settings(), broken)):
            pass
