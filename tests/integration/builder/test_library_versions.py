"""CL-05: an App keeps the library version it placed; a change of the component is a new version, and the
App moves to it only when its owner upgrades the placement."""
import uuid

import asyncpg
import pytest

from tests.integration.builder.support import call
from tests.integration.library.support import register
from tests.integration.library.test_used_in import eventually_used_in
from tests.support.infra import wait_until

ANA, CHO = "ana", "cho"


def placements(spec: dict) -> list[tuple[str, str, str]]:
    return [(c["component_id"], c["library_version"], c["image"]["tag"]) for c in spec["tasks"][0]["components"]]


async def test_a_changed_component_is_a_new_version_and_an_app_keeps_the_one_it_placed(stack):
    library, builder = stack
    cid = (await call(library, "POST", "/components", 201, user=CHO, json={
        "name": "shared-sim-" + uuid.uuid4().hex[:6], "image": {"registry": "r.io/sim", "tag": "1.0"},
        "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "16GB"},
        "command": ["python", "-m", "components.env_simulator"]}))["component_id"]
    app_id = (await call(builder, "POST", "/apps", 201, user=ANA, json={"name": "keeps-its-version"}))["app_id"]
    task_id = (await call(builder, "POST", f"/apps/{app_id}/tasks", 201, user=ANA, json={"name": "t"}))["task_id"]
    await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/components", 201, user=ANA, json={"component_id": cid})
    first = await call(builder, "POST", f"/apps/{app_id}/spec", 201, user=ANA)
    assert placements(first) == [(cid, "1.0.0", "1.0")]

    # Its owner changes what runs: a new version; the old one stays readable as it was.
    changed = await call(library, "PATCH", f"/components/{cid}", user=CHO,
                         json={"image": {"registry": "r.io/sim", "tag": "2.0"}, "command": ["python", "-m", "x"]})
    assert changed["version"] == "1.0.1"
    versions = await call(library, "GET", f"/components/{cid}/versions", role="viewer")
    assert [(v["version"], v["component"]["command"]) for v in versions] == [
        ("1.0.1", ["python", "-m", "x"]), ("1.0.0", ["python", "-m", "components.env_simulator"])]

    async def builder_heard_of_it() -> bool:
        return (await builder.platform.pool.fetchval(
            "SELECT snapshot->>'version' FROM library_components WHERE component_id = $1", cid)) == "1.0.1"

    await wait_until(builder_heard_of_it, timeout=15, message="component.updated to reach the builder")
    await call(builder, "PATCH", f"/apps/{app_id}", user=ANA, json={"description": "an unrelated edit"})
    second = await call(builder, "POST", f"/apps/{app_id}/spec", 201, user=ANA)
    assert placements(second) == [(cid, "1.0.0", "1.0")]  # the App still runs what it placed
    await eventually_used_in(library, cid, [(app_id, task_id, second["version"])])
    usage = (await call(library, "GET", f"/components/{cid}", role="viewer"))["used_in"]
    assert [u["library_version"] for u in usage] == ["1.0.0"]
    placed = await call(library, "GET", f"/components/{cid}/versions/1.0.0", role="viewer")  # what that spec runs
    assert (placed["current"], placed["component"]["command"]) == (False, ["python", "-m", "components.env_simulator"])
    missing = await call(library, "GET", f"/components/{cid}/versions/9.9.9", 404, role="viewer")
    assert missing["detail"] == f"component {cid} has no version 9.9.9"

    # Only the App's owner (or an admin) moves it on.
    await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/components/{cid}/upgrade", 403, user=CHO)
    task = await call(builder, "POST", f"/apps/{app_id}/tasks/{task_id}/components/{cid}/upgrade", user=ANA)
    assert [(c["library_version"], c["image"]["tag"]) for c in task["components"]] == [("1.0.1", "2.0")]
    third = await call(builder, "POST", f"/apps/{app_id}/spec", 201, user=ANA)
    assert placements(third) == [(cid, "1.0.1", "2.0")]
    stored = await call(builder, "GET", f"/apps/{app_id}/spec", role="viewer", params={"version": first["version"]})
    assert placements(stored) == [(cid, "1.0.0", "1.0")]  # spec versions are immutable


async def test_a_published_version_cannot_be_changed_in_place_even_in_the_database(stack):
    library, _ = stack
    cid = (await register(library))["component_id"]
    for statement in ("UPDATE component_versions SET snapshot = '{}' WHERE component_id = $1",
                      "DELETE FROM component_versions WHERE component_id = $1"):
        with pytest.raises(asyncpg.RaiseError, match=f"component version {cid}/1.0.0 is immutable"):
            await library.platform.pool.execute(statement, cid)
