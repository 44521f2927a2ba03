"""Asking to cancel a training request leaves one `audit.recorded` row in the trainer's outbox, however
often it is asked, with who asked and the X-Request-ID of the call (AU-04)."""
from contracts.events import parse_event
from tests.integration.approval.saga import trainer_service
from tests.integration.trainer.test_trainer_service import ready, request_status, spec_created
from tests.unit.approval.factory import seed_spec


async def audits(svc) -> list:
    rows = await svc.platform.pool.fetch(
        "SELECT payload::text AS body FROM outbox WHERE routing_key = 'audit.recorded' ORDER BY id")
    return [parse_event(row["body"]) for row in rows]


async def test_a_cancel_request_is_recorded_once_with_who_asked(fresh):
    async with trainer_service(fresh) as trainer:
        await spec_created(fresh.rabbitmq_url, seed_spec())
        await ready(trainer, "APP-A1B2C3", "1.0.0")
        kim = trainer.headers("researcher", user="kim")
        workload_id = (await trainer.client.post("/training-requests", json={"app_id": "APP-A1B2C3"},
                                                 headers=kim)).json()["workload_id"]
        await request_status(trainer, workload_id, "waiting")
        refused = await trainer.client.post(f"/training-requests/{workload_id}/cancel",
                                            headers={**trainer.headers("researcher", user="lee"),
                                                     "X-Request-ID": "req-lee"})
        assert refused.status_code == 403
        for request_id in ("req-cancel-1", "req-cancel-2"):
            response = await trainer.client.post(f"/training-requests/{workload_id}/cancel",
                                                 headers={**kim, "X-Request-ID": request_id})
            assert response.status_code == 202, response.text
        records = await audits(trainer)
    [record] = records
    assert (record.producer, record.correlation_id) == ("trainer", workload_id)
    data = record.data
    assert (data.action, data.actor, data.actor_role, data.target_type, data.target_id) == (
        "trainer.cancel_request", "kim", "researcher", "workload", workload_id)
    assert (data.before, data.after) == ({"status": "waiting", "cancel_requested_by": None},
                                         {"status": "waiting", "cancel_requested_by": "kim"})
    assert data.request_id == "req-cancel-1" and len(data.trace_id) == 32
