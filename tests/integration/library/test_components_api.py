import re
import uuid

import pytest

from tests.integration.builder.support import call
from tests.integration.library.support import component_body, library, register, watching  # noqa: F401
from tests.support.infra import wait_until


async def test_registering_gives_consecutive_cl_ref_ids_and_a_first_version(library):
    first, second = await register(library), await register(library)
    assert re.fullmatch(r"CL-REF-\d{3,}", first["component_id"])
    assert int(second["component_id"][7:]) == int(first["component_id"][7:]) + 1
    assert first["versions"] == [{"version": "1.0.0", "changed": [], "created_by": "researcher-user",
                                  "created_at": first["created_at"]}]
    assert first["used_in"] == [] and first["command"] == ["python", "-m", "components.env_simulator"]


async def test_every_component_attribute_of_the_spec_is_kept(library):
    body = component_body("rl-agent-" + uuid.uuid4().hex[:6], description="policy learner", version="2.0",
                          type="trainer", params={"lr": 0.001, "episodes": 1000},
                          image={"registry": "registry.avatar.io/rl-agent", "tag": "2.0"})
    response = await library.client.post("/components", json=body, headers=library.headers("admin"))
    assert response.status_code == 201
    detail = response.json()
    assert response.headers["location"] == f"/components/{detail['component_id']}"
    assert {k: detail[k] for k in body} == body
    assert detail["created_at"] and detail["created_by"] == "admin-user"
    assert await call(library, "GET", f"/components/{detail['component_id']}", role="viewer") == detail


async def test_registering_publishes_component_registered(library):
    async with watching(library.settings.rabbitmq_url, "component.registered") as seen:
        detail = await register(library)
        event = await wait_until(lambda: next((e for e in seen if e["correlation_id"] == detail["component_id"]), None),
                                 message="component.registered on the broker")
    assert event["producer"] == "library"
    assert event["data"]["component"] == {k: detail[k] for k in event["data"]["component"]}


@pytest.mark.parametrize("overrides,complaint", [
    ({"resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "lots"}}, "invalid memory value 'lots'"),
    ({"resources": {"gpu_type": "A100", "gpu_count": -1, "memory": "16GB"}}, "greater than or equal to 0"),
    ({"type": "solver"}, "trainer"),
    ({"image": {"registry": "r.io/x"}}, "tag"),
    ({"version": "latest"}, "version"),
    ({"owner": "kim"}, "Extra inputs are not permitted"),
    ({"name": "   "}, "name"),
])
async def test_bad_registrations_are_refused_saying_what_is_wrong(library, overrides, complaint):
    response = await library.client.post("/components", json=component_body(**overrides),
                                         headers=library.headers("researcher"))
    assert response.status_code == 422
    assert complaint in str(response.json()["detail"])


async def test_a_name_is_registered_once_whatever_its_case(library):
    name = "dup-" + uuid.uuid4().hex[:6]
    await register(library, name)
    response = await library.client.post("/components", json=component_body(name.upper()),
                                         headers=library.headers("researcher"))
    assert response.status_code == 409 and response.json()["detail"]["code"] == "name_taken"


async def test_search_matches_name_or_description_filters_by_type_and_pages(library):
    token = uuid.uuid4().hex[:8]
    a = await register(library, f"{token}-loader", type="data_loader")
    b = await register(library, f"other-{uuid.uuid4().hex[:6]}", description=f"feeds {token.upper()} batches",
                       type="preprocessor")
    c = await register(library, f"{token}-trainer", type="trainer")
    found = await call(library, "GET", "/components", params={"q": token}, role="viewer")
    assert [x["component_id"] for x in found["items"]] == [a["component_id"], b["component_id"], c["component_id"]]
    assert found["total"] == 3 and found["items"][0]["used_in_count"] == 0
    typed = await call(library, "GET", "/components", params={"q": token, "type": "trainer"})
    assert [x["component_id"] for x in typed["items"]] == [c["component_id"]]
    page = await call(library, "GET", "/components", params={"q": token, "page": 2, "page_size": 2})
    assert ([x["component_id"] for x in page["items"]], page["total"], page["page"]) == ([c["component_id"]], 3, 2)
    await call(library, "GET", "/components", 422, params={"type": "solver"})
    await call(library, "GET", "/components", 422, params={"page_size": 1000})


async def test_search_wildcards_are_literal(library):
    token = uuid.uuid4().hex[:8]
    await register(library, f"{token}-x")
    assert (await call(library, "GET", "/components", params={"q": f"{token[:4]}%"}))["total"] == 0
    assert (await call(library, "GET", "/components", params={"q": f"{token[:4]}_"}))["total"] == 0


async def test_an_update_writes_a_new_version_keeps_the_old_and_publishes_it(library):
    registered = await register(library)
    cid = registered["component_id"]
    async with watching(library.settings.rabbitmq_url, "component.updated") as seen:
        detail = await call(library, "PATCH", f"/components/{cid}",
                            json={"image": {"registry": "registry.avatar.io/env-sim", "tag": "1.1"}})
        event = await wait_until(lambda: next((e for e in seen if e["correlation_id"] == cid), None),
                                 message="component.updated on the broker")
    assert (detail["version"], detail["image"]["tag"]) == ("1.0.1", "1.1")
    assert event["data"]["component"]["version"] == "1.0.1"
    assert [(v["version"], v["changed"]) for v in detail["versions"]] == [("1.0.1", ["image"]), ("1.0.0", [])]
    versions = await call(library, "GET", f"/components/{cid}/versions", role="viewer")
    assert [(v["version"], v["current"], v["component"]["image"]["tag"]) for v in versions] == [
        ("1.0.1", True, "1.1"), ("1.0.0", False, "1.0")]
    assert versions[1]["component"] == {k: registered[k] for k in versions[1]["component"]}


async def test_an_update_may_name_its_version_but_never_reuse_one(library):
    cid = (await register(library))["component_id"]
    detail = await call(library, "PATCH", f"/components/{cid}", json={"version": "2.0.0", "description": "major"})
    assert detail["version"] == "2.0.0"
    answer = await call(library, "PATCH", f"/components/{cid}", 409, json={"version": "1.0.0"})
    assert answer["detail"]["code"] == "version_exists"


async def test_an_update_that_changes_nothing_writes_no_version(library):
    registered = await register(library)
    cid = registered["component_id"]
    detail = await call(library, "PATCH", f"/components/{cid}", json={"name": registered["name"]})
    assert detail["version"] == "1.0.0" and len(detail["versions"]) == 1


async def test_renaming_onto_another_components_name_is_refused(library):
    taken = (await register(library))["name"]
    cid = (await register(library))["component_id"]
    answer = await call(library, "PATCH", f"/components/{cid}", 409, json={"name": taken})
    assert answer["detail"]["code"] == "name_taken"


async def test_an_unknown_component_is_404_naming_it(library):
    for method, url in [("GET", "/components/CL-REF-999999"), ("GET", "/components/CL-REF-999999/versions"),
                        ("PATCH", "/components/CL-REF-999999")]:
        answer = await call(library, method, url, 404, **({"json": {}} if method == "PATCH" else {}))
        assert answer == {"detail": "component CL-REF-999999 not found"}


async def test_a_viewer_reads_but_cannot_write_and_no_token_reads_nothing(library):
    cid = (await register(library))["component_id"]
    viewer = library.headers("viewer")
    assert (await library.client.post("/components", json=component_body(), headers=viewer)).status_code == 403
    assert (await library.client.patch(f"/components/{cid}", json={"description": "x"},
                                       headers=viewer)).status_code == 403
    for url in ("/components", f"/components/{cid}", f"/components/{cid}/versions"):
        assert (await library.client.get(url, headers=viewer)).status_code == 200
        assert (await library.client.get(url)).status_code == 401
