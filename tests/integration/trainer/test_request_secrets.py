"""A training request's own secret env vars (issue 22, Secrets): stored by the trainer, encrypted and audited;
the workload (and so `training.requested`) names them by reference, beside the App's own references; only
the scheduler's service identity resolves them."""
import json

from contracts.spec import SecretRef
from services.kit.auth import mint_service_token
from tests.integration.approval.saga import tapped, trainer_service
from tests.integration.trainer.test_trainer_service import ready, spec_created
from tests.unit.approval.factory import small_spec

VALUE = "req-secret-9f8e7d6c5b4a"


async def test_request_secrets_are_stored_encrypted_and_travel_as_references(fresh):
    app_ref = SecretRef(service="builder", owner="APP-5MA11A", version=2)
    spec = small_spec((1, "16GB")).model_copy(update={
        "env_vars": {"NCCL_DEBUG": "INFO", "OVERRIDDEN": "app"}, "secret_env_vars": {"APP_API_KEY": app_ref,
                                                                                       "PLAIN_NOW_TOKEN": app_ref}})
    async with trainer_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await spec_created(fresh.rabbitmq_url, spec)
        await ready(svc, spec.app_id, spec.version)
        kim = svc.headers("researcher", "kim")
        refused = await svc.client.post("/training-requests", headers=kim, json={
            "app_id": spec.app_id, "env_vars": {"RUN_TOKEN": {"secret": True}}})
        assert refused.status_code == 422 and "RUN_TOKEN" in refused.text
        submitted = await svc.client.post("/training-requests", headers=kim, json={
            "app_id": spec.app_id, "env_vars": {"RUN_TOKEN": VALUE, "OVERRIDDEN": {"value": VALUE, "secret": True},
                                                "PLAIN_NOW_TOKEN": {"value": "shown", "secret": False}}})
        assert submitted.status_code == 202, submitted.text
        workload_id = submitted.json()["workload_id"]
        requested = await tap.one("training.requested", workload_id)
        for role in ("viewer", "researcher", "admin"):
            detail = await svc.client.get(f"/training-requests/{workload_id}", headers=svc.headers(role))
            assert detail.status_code == 200 and VALUE not in detail.text
        async with svc.platform.pool.acquire() as conn:
            stored = await conn.fetch("SELECT name, version, ciphertext FROM secret_values WHERE owner = $1",
                                      workload_id)
            trail = await conn.fetch("SELECT name, action, changed_by FROM secret_changes WHERE owner = $1 ORDER BY id",
                                     workload_id)
            rows = await conn.fetchval("SELECT string_agg(r::text, '') FROM training_requests r")
        scheduler = {"Authorization": f"Bearer {mint_service_token(svc.settings, 'scheduler')}"}
        body = {"run": "r", "secrets": [{"name": "RUN_TOKEN", "owner": workload_id, "version": 1}]}
        resolved = await svc.client.post("/internal/secrets/resolve", json=body, headers=scheduler)
        as_admin = await svc.client.post("/internal/secrets/resolve", json=body, headers=svc.headers("admin"))

    assert VALUE not in json.dumps(requested.to_wire())
    workload_spec = requested.to_wire()["data"]["spec"]
    ref = {"service": "trainer", "owner": workload_id, "version": 1}
    assert workload_spec["secret_env_vars"] == {
        "APP_API_KEY": app_ref.model_dump(), "RUN_TOKEN": ref, "OVERRIDDEN": ref}
    assert workload_spec["env_vars"] == {"NCCL_DEBUG": "INFO", "PLAIN_NOW_TOKEN": "shown"}
    assert sorted((r["name"], r["version"]) for r in stored) == [("OVERRIDDEN", 1), ("RUN_TOKEN", 1)]
    assert all(VALUE.encode() not in bytes(r["ciphertext"]) for r in stored) and VALUE not in (rows or "")
    assert [(r["name"], r["action"], r["changed_by"]) for r in trail] == [("OVERRIDDEN", "set", "kim"),
                                                                           ("RUN_TOKEN", "set", "kim")]
    assert resolved.status_code == 200 and resolved.json()["values"][0]["value"] == VALUE
    assert as_admin.status_code == 403 and VALUE not in as_admin.text
