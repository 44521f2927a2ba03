"""Each alias move and rollback leaves one `audit.recorded` row in the models service's outbox, with where
the alias pointed before and after and the X-Request-ID of the call; a move that changes nothing or a
refused one leaves none (AU-04)."""
from contracts.events import parse_event
from services.models.main import create_app
from tests.integration.models.helpers import make_model, models_settings, owned_by, unique
from tests.support.services import running_service


async def audits(svc) -> list:
    rows = await svc.platform.pool.fetch(
        "SELECT payload::text AS body FROM outbox WHERE routing_key = 'audit.recorded' ORDER BY id")
    return [parse_event(row["body"]) for row in rows]


async def test_alias_moves_and_rollbacks_are_recorded_with_before_and_after(fresh, s3):
    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        await owned_by(svc, fresh, app_id, "kim")
        v1, v2 = [await make_model(svc, fresh, s3, app_id, metrics={"final_reward": r}) for r in (60, 70)]
        url = f"/apps/{app_id}/aliases/production"

        def call(request_id: str) -> dict:
            return {**svc.headers("researcher", user="kim"), "X-Request-ID": request_id}

        for model, request_id in ((v1, "req-move-1"), (v2, "req-move-2"), (v2, "req-move-same")):
            moved = await svc.client.put(url, json={"model_id": model["model_id"],
                                                    "gate": {"metric": "final_reward", "min": 50}},
                                         headers=call(request_id))
            assert moved.status_code == 200, moved.text
        refused = await svc.client.put(url, json={"model_id": v1["model_id"],
                                                  "gate": {"metric": "final_reward", "min": 65}},
                                       headers=call("req-refused"))
        assert refused.status_code == 409
        back = await svc.client.post(f"{url}/rollback", headers=call("req-back"))
        assert back.status_code == 200, back.text
        records = await audits(svc)

    assert [(e.data.action, e.data.request_id) for e in records] == [
        ("models.alias_move", "req-move-1"), ("models.alias_move", "req-move-2"),
        ("models.alias_rollback", "req-back")]
    first, second, rollback = records
    assert (first.data.before, first.correlation_id, first.data.target_type, first.data.target_id) == (
        {"model_id": None}, app_id, "model_alias", f"{app_id}/production")
    assert second.data.before == {"model_id": v1["model_id"]}
    assert second.data.after == {"model_id": v2["model_id"], "version": 2, "gate_observed": 70.0,
                                 "gate": {"metric": "final_reward", "min": 50.0}}
    assert (second.data.actor, second.data.actor_role) == ("kim", "researcher")
    assert (rollback.data.before, rollback.data.after) == ({"model_id": v2["model_id"]},
                                                           {"model_id": v1["model_id"], "version": 1})
