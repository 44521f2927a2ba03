"""An App's env var and secret changes and its owner transfers leave one `audit.recorded` row each in the
builder's outbox: names before and after, never a value, and the X-Request-ID of the call (AU-04)."""
from contracts.events import parse_event
from tests.integration.builder.support import new_app

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


async def audits(svc, app_id: str) -> list:
    rows = await svc.platform.pool.fetch(
        "SELECT payload::text AS body FROM outbox WHERE routing_key = 'audit.recorded'"
        " AND payload->'data'->>'target_id' = $1 ORDER BY id", app_id)
    return [(parse_event(row["body"]), row["body"]) for row in rows]


async def test_env_var_changes_and_transfers_are_recorded_by_name_only(stack):
    _, builder = stack
    app_id = await new_app(builder, name="audit-app", env_vars={"NCCL_DEBUG": "INFO"})

    async def put(request_id: str, body: dict, role: str = "researcher", user: str | None = None):
        response = await builder.client.put(f"/apps/{app_id}/env-vars", json=body,
                                            headers={**builder.headers(role, user), "X-Request-ID": request_id})
        assert response.status_code == 200, response.text

    await put("req-env-1", {"NCCL_DEBUG": "WARN", "HF_TOKEN": SECRET})
    await put("req-env-same", {"NCCL_DEBUG": "WARN", "HF_TOKEN": {"secret": True}})  # kept: nothing changed
    await put("req-env-2", {"HF_TOKEN": "rotated-value"})
    moved = await builder.client.put(f"/apps/{app_id}/owner", json={"owner": "lee"},
                                     headers={**builder.headers("admin", user="park"), "X-Request-ID": "req-owner"})
    assert moved.status_code == 200, moved.text
    refused = await builder.client.put(f"/apps/{app_id}/owner", json={"owner": "kim"},
                                       headers={**builder.headers("researcher"), "X-Request-ID": "req-no"})
    assert refused.status_code == 403
    records = await audits(builder, app_id)

    assert SECRET not in "".join(body for _, body in records) and "rotated-value" not in "".join(
        body for _, body in records)
    events = [event for event, _ in records]
    assert [(e.data.action, e.data.request_id) for e in events] == [
        ("builder.env_vars_change", "req-env-1"), ("builder.env_vars_change", "req-env-2"),
        ("builder.owner_transfer", "req-owner")]
    first, second, transfer = events
    assert (first.producer, first.correlation_id, first.data.target_type) == ("builder", app_id, "app")
    assert (first.data.actor, first.data.actor_role) == ("researcher-user", "researcher")
    assert first.data.before == {"env_vars": ["NCCL_DEBUG"], "secrets": []}
    assert first.data.after == {"env_vars": ["NCCL_DEBUG"], "secrets": ["HF_TOKEN"], "changed": ["NCCL_DEBUG"]}
    assert second.data.before == {"env_vars": ["NCCL_DEBUG"], "secrets": ["HF_TOKEN"]}
    assert second.data.after == {"env_vars": [], "secrets": ["HF_TOKEN"], "changed": ["HF_TOKEN"]}
    assert (transfer.data.actor, transfer.data.before, transfer.data.after) == (
        "park", {"owner": "researcher-user"}, {"owner": "lee"})
