"""GET /queue explains why each waiting workload waits and when it may start (services/scheduler/wait.py),
against the real PostgreSQL, Redis and broker; an admin's move announces `queue.changed` for the console."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.integration.scheduler_service.support import component, register, workload
from tests.integration.scheduler_service.test_scheduler_queue import _has, approve, start_blocker
from tests.support.infra import wait_until

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)


async def test_waiting_workloads_say_what_they_wait_for_and_when_they_may_start(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    await start_blocker(scheduler, publish, tap)  # both A100s of node-a, for up to 60 s (max_runtime)
    waiting = (("WL-W1", component("CL-PROBE", gpu_count=1, sleep_s=30)),
               ("WL-W2", component("CL-PROBE", gpu_count=2, sleep_s=30)),
               ("WL-HUGE", component("CL-PROBE", gpu_count=4, sleep_s=30)))
    for offset, (wid, comp) in enumerate(waiting):
        await approve(publish, workload(wid, comp, submitted_at=T0 + timedelta(seconds=offset)))
    await wait_until(lambda: _has(scheduler, 3), message="three waiting workloads")

    response = await scheduler.client.get("/queue", headers=scheduler.headers("viewer"))
    assert response.status_code == 200
    items = {item["workload_id"]: item for item in response.json()["items"]}
    started = datetime.now(timezone.utc)

    first = items["WL-W1"]
    assert first["wait_reason"] == {"code": "gpus", "text": "한 노드에 A100 1개 필요 · 여유 0개",
                                    "gpu_type": "A100", "gpu_count": 1, "gpus_free": 0}
    # the blocker holds node-a until its deadline (started + 60 s): W1 is estimated then, W2 after W1's 60 s
    w1_start = datetime.fromisoformat(first["estimated_start"])
    assert started < w1_start <= started + timedelta(seconds=61)
    second = items["WL-W2"]
    assert second["wait_reason"]["code"] == "gpus"
    assert datetime.fromisoformat(second["estimated_start"]) - w1_start == timedelta(seconds=60)
    huge = items["WL-HUGE"]
    assert huge["wait_reason"]["code"] == "unschedulable" and huge["estimated_start"] is None
    assert huge["wait_reason"]["text"] == "A100 4개를 한 번에 가진 활성 노드가 없습니다"

    # paging keeps the work ahead: the second page's reason is the same as in the whole list
    page = (await scheduler.client.get("/queue", params={"offset": 1, "limit": 1},
                                       headers=scheduler.headers("viewer"))).json()
    assert page["count"] == 3 and [i["workload_id"] for i in page["items"]] == ["WL-W2"]
    assert page["items"][0]["estimated_start"] == second["estimated_start"]

    # an admin's move is announced for the console's live queue
    moved = await scheduler.client.patch("/queue/WL-W2", json={"before": "WL-W1"}, headers=scheduler.headers("admin"))
    assert moved.status_code == 200, moved.text
    changed = (await tap.wait_for("queue.changed", "WL-W2")).data
    assert (changed.action, changed.priority, changed.position, changed.changed_by) == ("move", "normal", 1,
                                                                                         "admin-user")
    for wid in ("WL-BLOCK", "WL-W1", "WL-W2", "WL-HUGE"):
        await scheduler.client.post(f"/workloads/{wid}/cancel", headers=scheduler.headers("admin"))
