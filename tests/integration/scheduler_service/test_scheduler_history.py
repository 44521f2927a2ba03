"""The usage history (RS-06) on real PostgreSQL and Redis: the leader samples the cluster's figures, a
running workload's GPUs show as allocated in its bucket, old samples are pruned, windows are checked."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from contracts.events import WorkloadApproved
from services.scheduler.engine.history import prune
from services.scheduler.main import create_app
from tests.integration.scheduler_service.support import component, register, workload
from tests.support.infra import wait_until
from tests.support.services import running_service


async def _history(service, **query):
    response = await service.client.get("/resources/history", params=query, headers=service.headers("viewer"))
    assert response.status_code == 200, response.text
    return response.json()


def _a100(body) -> dict:
    return next(g for g in body["gpus"] if g["gpu_type"] == "A100")


async def test_the_leader_samples_and_a_running_workloads_gpus_show_as_allocated(scheduler_settings, publish, tap):
    async with running_service(create_app, scheduler_settings(scheduler_history_seconds=0.3)) as scheduler:
        await wait_until(lambda: scheduler.app.state.scheduler.leadership.leading, message="leadership")
        since = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()

        async def sampled():  # the recorder samples once this replica leads and has recovered
            body = await _history(scheduler, **{"from": since, "step": 10})
            a100 = [g for g in body["gpus"] if g["gpu_type"] == "A100"]
            return body if a100 and any(v is not None for v in a100[0]["total"]) else None

        body = await wait_until(sampled, message="a first sample")
        assert {g["gpu_type"] for g in body["gpus"]} == {"A100", "V100"}  # the test inventory's types
        assert max(v for v in _a100(body)["total"] if v is not None) == 2
        assert body["memory"]["total_bytes"][-1] in (None, 128_000_000_000)
        assert body["step_s"] == 10 and len(body["times"]) == len(_a100(body)["allocated"])
        assert body["sample_s"] == 0.3 and set(body["measured"]) >= {"memory", "cpu"}

        await register(publish, scheduler, "CL-PROBE")
        wl = workload("WL-HIST", component("CL-PROBE", gpu_count=2, sleep_s=20))
        await publish("workload.approved", WorkloadApproved(workload_id="WL-HIST", auto=True, workload=wl),
                      correlation_id="WL-HIST")
        await tap.wait_for("workload.started", "WL-HIST")

        async def allocated():
            body = await _history(scheduler, **{"from": since, "step": 1})
            return body if 2 in _a100(body)["allocated"] else None

        body = await wait_until(allocated, message="the workload's 2 A100s in a bucket")
        assert all(v is None for v in _a100(body)["used"])  # GPUs are not measured here: None, never a copy
        await scheduler.client.post("/workloads/WL-HIST/cancel", headers=scheduler.headers())
        await tap.wait_for("workload.cancelled", "WL-HIST")


async def test_samples_past_the_retention_are_pruned_and_bad_windows_are_refused(scheduler_settings):
    async with running_service(create_app, scheduler_settings(scheduler_history_seconds=3600)) as scheduler:
        pool = scheduler.platform.pool
        old = datetime.now(timezone.utc) - timedelta(days=30)
        await pool.executemany("INSERT INTO resource_samples (at, resource, total, allocated, used)"
                               " VALUES ($1, 'cpu', 8, 1, NULL)", [(old + timedelta(seconds=i),) for i in range(7)])
        assert await prune(pool, old + timedelta(days=1), batch=3) == 7
        assert await pool.fetchval("SELECT count(*) FROM resource_samples WHERE at < $1", old + timedelta(days=1)) == 0

        headers = scheduler.headers("viewer")
        now = datetime.now(timezone.utc)
        backwards = await scheduler.client.get("/resources/history", headers=headers, params={
            "from": now.isoformat(), "to": (now - timedelta(hours=1)).isoformat()})
        assert backwards.status_code == 422 and "'from' must be before 'to'" in backwards.text
        too_many = await scheduler.client.get("/resources/history", headers=headers, params={
            "from": (now - timedelta(days=7)).isoformat(), "step": 60})
        assert too_many.status_code == 422 and "at most 1000" in too_many.text
        anonymous = await scheduler.client.get("/resources/history")
        assert anonymous.status_code == 401


async def test_a_window_at_the_edge_of_the_calendar_is_refused_not_a_server_error(scheduler_settings):
    async with running_service(create_app, scheduler_settings(scheduler_history_seconds=3600)) as scheduler:
        for query in ({"from": "0001-01-01T00:00:00Z"}, {"to": "0001-01-01T00:01:00Z"}):
            answer = await scheduler.client.get("/resources/history", params=query, headers=scheduler.headers("viewer"))
            assert answer.status_code == 422, (query, answer.text)
            assert "between the years" in answer.json()["detail"]
