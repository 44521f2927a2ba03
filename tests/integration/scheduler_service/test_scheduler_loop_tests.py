"""Loop tests (minimum run tests): ahead of normal work, reduced episodes / repeated runs."""
from __future__ import annotations

from contracts.events import LoopTestRequested, WorkloadApproved
from tests.integration.scheduler_service.support import component, register, workload
from tests.support.infra import wait_until

RL_AGENT = ["python", "-m", "components.rl_agent"]


def rl_workload(workload_id: str):
    wl = workload(workload_id, component("CL-REF-002", name="rl-agent", gpu_count=1, memory="8GB",
                                         lr=0.001, episodes=1000), episodes=1000)
    return wl


async def test_rl_loop_test_reports_the_trainers_rewards_for_the_reduced_episodes(scheduler, publish, tap):
    await register(publish, scheduler, "CL-REF-002", command=RL_AGENT, kind="trainer",
                   registry="registry.avatar.io/rl-agent")
    wl = rl_workload("WL-RL")
    await publish("looptest.requested", LoopTestRequested(workload_id="WL-RL", test_run_id="TR-1", mode="rl",
                                                          episodes=6, requested_by="admin", workload=wl),
                  correlation_id="WL-RL")

    completed = await tap.wait_for("looptest.completed", "WL-RL", timeout=30)
    assert completed.data.test_run_id == "TR-1" and completed.data.mode == "rl"
    assert completed.data.failure is None
    assert len(completed.data.rewards) == 6
    queued = tap.of("workload.queued", "WL-RL")[0].data
    assert queued.loop_test is True and queued.priority == "high"
    assert tap.emitted("WL-RL") == ["workload.queued", "looptest.completed"]  # never workload.started/completed

    detail = (await scheduler.client.get("/workloads/WL-RL", headers=scheduler.headers("viewer"))).json()
    assert detail["status"] is None
    test = detail["loop_tests"][0]
    assert (test["test_run_id"], test["status"], test["mode"], test["episodes"]) == ("TR-1", "completed", "rl", 6)
    assert test["components"][0]["metrics"]["episodes"] == 6
    assert test["components"][0]["output_prefix"] == "s3://avatar-staging/WL-RL/looptest/TR-1/run-1/TASK-001/CL-REF-002/"
    log = await scheduler.client.get("/workloads/WL-RL/logs", params={"test_run": "TR-1", "component": "rl-agent"},
                                     headers=scheduler.headers("viewer"))
    assert "Episode 6: reward=" in log.text


async def test_general_loop_test_runs_the_dag_repeatedly_and_records_each_run(scheduler, publish, tap):
    await register(publish, scheduler, "CL-A", "CL-B")
    wl = workload("WL-GEN", component("CL-A", sleep_s=0.2), component("CL-B"), edges=[("CL-A", "CL-B")])
    wl = wl.model_copy(update={"is_training_request": False})
    await publish("looptest.requested", LoopTestRequested(workload_id="WL-GEN", test_run_id="TR-G", mode="general",
                                                          episodes=3, requested_by="admin", workload=wl))

    completed = await tap.wait_for("looptest.completed", "WL-GEN", timeout=30)
    runs = completed.data.runs
    assert [(r.run, r.success) for r in runs] == [(1, True), (2, True), (3, True)]
    assert all(r.duration_s >= 0.2 for r in runs)
    assert completed.data.failure is None and completed.data.rewards == []


async def test_general_loop_test_records_a_failed_run_and_goes_on(scheduler, publish, tap):
    await register(publish, scheduler, "CL-BAD")
    wl = workload("WL-GENF", component("CL-BAD", exit_code=4))
    await publish("looptest.requested", LoopTestRequested(workload_id="WL-GENF", test_run_id="TR-F", mode="general",
                                                          episodes=2, requested_by="admin", workload=wl))
    completed = await tap.wait_for("looptest.completed", "WL-GENF", timeout=30)
    assert [(r.run, r.success) for r in completed.data.runs] == [(1, False), (2, False)]
    assert "exited with exit code 4" in completed.data.runs[0].reason
    assert not tap.of("workload.failed", "WL-GENF")


async def test_loop_test_waits_ahead_of_all_other_work(scheduler, publish, tap):
    await register(publish, scheduler, "CL-PROBE")
    blocker = workload("WL-BUSY", component("CL-PROBE", gpu_count=2, sleep_s=30))
    await publish("workload.approved", WorkloadApproved(workload_id="WL-BUSY", auto=True, workload=blocker))
    await tap.wait_for("workload.started", "WL-BUSY")
    urgent = workload("WL-URGENT", component("CL-PROBE", gpu_count=1), priority="high")
    await publish("workload.approved", WorkloadApproved(workload_id="WL-URGENT", auto=True, workload=urgent))
    await tap.wait_for("workload.queued", "WL-URGENT")
    tested = workload("WL-TESTED", component("CL-PROBE", gpu_count=1), priority="low")
    await publish("looptest.requested", LoopTestRequested(workload_id="WL-TESTED", test_run_id="TR-9", mode="general",
                                                          episodes=1, requested_by="admin", workload=tested))

    async def queue():
        items = (await scheduler.client.get("/queue", headers=scheduler.headers("viewer"))).json()["items"]
        return items if len(items) == 2 else None

    items = await wait_until(queue, message="two waiting entries")
    assert [(i["workload_id"], i["kind"], i["test_run_id"]) for i in items] == [
        ("WL-TESTED", "looptest", "TR-9"), ("WL-URGENT", "workload", None)]
    await scheduler.client.post("/workloads/WL-BUSY/cancel", headers=scheduler.headers())
    completed = await tap.wait_for("looptest.completed", "WL-TESTED")
    assert completed.data.runs[0].success
    await tap.wait_for("workload.completed", "WL-URGENT")


async def test_rl_loop_test_that_fails_reports_why_and_never_fails_the_workload(scheduler, publish, tap):
    await register(publish, scheduler, "CL-REF-002", command=RL_AGENT, kind="trainer",
                   registry="registry.avatar.io/rl-agent")
    wl = rl_workload("WL-RLBAD")
    wl = wl.model_copy(update={"training_config": wl.training_config.model_copy(update={"env_config": {"max_temp": -5}})})
    await publish("looptest.requested", LoopTestRequested(workload_id="WL-RLBAD", test_run_id="TR-B", mode="rl",
                                                          episodes=3, requested_by="admin", workload=wl))
    completed = await tap.wait_for("looptest.completed", "WL-RLBAD", timeout=30)
    assert completed.data.rewards == []
    assert "rl-agent (CL-REF-002) exited with exit code 2" in completed.data.failure
    assert "env_config.max_temp must be > 0" in completed.data.failure
    assert tap.emitted("WL-RLBAD") == ["workload.queued", "looptest.completed"]
