"""A component's new version and its owner transfers leave one `audit.recorded` row each in the library's
outbox, with before/after and the X-Request-ID of the call; a change that changes nothing leaves none (AU-04)."""
from contracts.events import parse_event
from tests.integration.builder.support import call
from tests.integration.library.support import component_body, library  # noqa: F401  (the module's library)


async def audits(svc, component_id: str) -> list:
    rows = await svc.platform.pool.fetch(
        "SELECT payload::text AS body FROM outbox WHERE routing_key = 'audit.recorded'"
        " AND payload->'data'->>'target_id' = $1 ORDER BY id", component_id)
    return [parse_event(row["body"]) for row in rows]


async def test_a_new_version_and_a_transfer_are_recorded_with_before_and_after(library):
    cid = (await call(library, "POST", "/components", 201, user="ana", json=component_body()))["component_id"]

    def headers(request_id: str, role: str = "researcher", user: str = "ana") -> dict:
        return {**library.headers(role, user), "X-Request-ID": request_id}

    for request_id in ("req-update", "req-same"):
        response = await library.client.patch(f"/components/{cid}", json={"description": "tuned"},
                                              headers=headers(request_id))
        assert response.status_code == 200, response.text
    moved = await library.client.put(f"/components/{cid}/owner", json={"owner": "ben"},
                                     headers=headers("req-owner", "admin", "park"))
    assert moved.status_code == 200, moved.text
    records = await audits(library, cid)

    assert [(e.data.action, e.data.request_id) for e in records] == [
        ("library.component_update", "req-update"), ("library.owner_transfer", "req-owner")]
    update, transfer = records
    assert (update.producer, update.correlation_id, update.data.target_type) == ("library", cid, "component")
    assert (update.data.actor, update.data.actor_role) == ("ana", "researcher")
    assert (update.data.before, update.data.after) == ({"version": "1.0.0"},
                                                       {"version": "1.0.1", "changed": ["description"]})
    assert (transfer.data.actor, transfer.data.actor_role, transfer.data.before, transfer.data.after) == (
        "park", "admin", {"owner": "ana"}, {"owner": "ben"})
