import json
import uuid
from datetime import timedelta
from pathlib import Path

import jsonschema

from contracts.events import (AppDeleted, AppSpecCreated, ComponentAllocation, ComponentArtifacts,
                              LoopTestCompleted, ModelStored, WorkloadCancelled, WorkloadCompleted, WorkloadQueued,
                              WorkloadFailed, WorkloadStarted, make_event)
from contracts.spec import AppSpec
from contracts.workload import Workload
from tests.integration.approval.saga import (approval_service, approval_status, emit, publish, tapped,
                                             trainer_service)
from tests.support.infra import wait_until
from tests.unit.approval.factory import seed_spec, seed_spec_wire, small_spec, workload

SCHEMAS = Path(__file__).parents[3] / "contracts" / "schemas"
CONVERGING = [72.1, 78.5, 82.0, 85.3, 87.9, 89.4, 90.2, 91.0, 91.6, 92.1]


async def spec_created(url: str, spec) -> None:
    await emit(url, "app.spec_created", AppSpecCreated(app_id=spec.app_id, version=spec.version, spec=spec),
               producer="builder")


async def ready(svc, app_id: str, version: str) -> None:
    async def listed():
        response = await svc.client.get(f"/apps/{app_id}", headers=svc.headers("viewer"))
        return response.status_code == 200 and response.json()["version"] == version

    await wait_until(listed, message=f"{app_id} {version} to be ready")


async def request_status(svc, workload_id: str, status: str, timeout: float = 10.0) -> dict:
    async def reached():
        response = await svc.client.get(f"/training-requests/{workload_id}", headers=svc.headers("viewer"))
        return response.status_code == 200 and response.json()["status"] == status and response.json()

    return await wait_until(reached, timeout=timeout, message=f"{workload_id} to be {status}")


async def _timeline_of(svc, workload_id: str, entries: int) -> dict | None:
    """The request once its timeline holds `entries` entries."""
    response = await svc.client.get(f"/training-requests/{workload_id}", headers=svc.headers("viewer"))
    return response.json() if response.status_code == 200 and len(response.json()["timeline"]) >= entries else None


def _published_elsewhere(view: dict) -> list[str]:
    """The timeline's types but the trainer's own acceptance of the outside request (at its own time)."""
    return [entry["type"] for entry in view["timeline"] if entry["producer"] != "trainer"]


async def _has_entry(svc, workload_id: str, event_type: str) -> bool:
    response = await svc.client.get(f"/training-requests/{workload_id}", headers=svc.headers("viewer"))
    return response.status_code == 200 and any(e["type"] == event_type for e in response.json()["timeline"])


async def test_ready_apps_and_resource_defaults_come_from_spec_events(fresh):
    async with trainer_service(fresh) as svc:
        await spec_created(fresh.rabbitmq_url, seed_spec())
        await spec_created(fresh.rabbitmq_url, seed_spec(version="1.1.0", created_at="2026-02-10T09:00:00.000Z"))
        await spec_created(fresh.rabbitmq_url, small_spec((1, "16GB")))
        await ready(svc, "APP-A1B2C3", "1.1.0")
        await ready(svc, "APP-5MA11A", "1.0.0")
        listed = (await svc.client.get("/apps", headers=svc.headers("viewer"))).json()
        defaults = await svc.client.get("/apps/APP-A1B2C3/resource-defaults", headers=svc.headers("viewer"))
        older = await svc.client.get("/apps/APP-A1B2C3/resource-defaults", params={"version": "1.0.0"},
                                     headers=svc.headers("viewer"))
        missing = await svc.client.get("/apps/APP-NOPE00/resource-defaults", headers=svc.headers("viewer"))
        detail = (await svc.client.get("/apps/APP-A1B2C3", headers=svc.headers("viewer"))).json()
        await emit(fresh.rabbitmq_url, "app.deleted", AppDeleted(app_id="APP-5MA11A", deleted_by="kim"),
                   producer="builder")
        await wait_until(lambda: _app_gone(svc, "APP-5MA11A"), message="the deleted app to disappear")
        unauthenticated = await svc.client.get("/apps")
    assert listed["total"] == 2 and {item["app_id"] for item in listed["items"]} == {"APP-A1B2C3", "APP-5MA11A"}
    seed = next(item for item in listed["items"] if item["app_id"] == "APP-A1B2C3")
    assert (seed["status"], seed["version"], seed["version_count"], seed["task_count"], seed["component_count"]) == (
        "ready", "1.1.0", 2, 2, 5)
    assert seed["largest"] == {"component_id": "CL-REF-002", "name": "rl-agent", "gpu_type": "A100", "gpu_count": 4,
                               "memory": "128GB"}
    assert defaults.json() == {
        "app_id": "APP-A1B2C3", "spec_version": "1.1.0", "gpu_type": "A100", "gpu_count": 4, "memory": "128GB",
        "cpu": None, "max_runtime": "2h", "source_component": {"component_id": "CL-REF-002", "name": "rl-agent"},
        "training_config": seed_spec().training_config.model_dump()}
    assert older.json()["spec_version"] == "1.0.0"
    assert detail["versions"] == ["1.0.0", "1.1.0"] and detail["spec"]["version"] == "1.1.0"
    assert missing.status_code == 404 and "APP-NOPE00" in missing.json()["detail"]
    assert unauthenticated.status_code == 401


async def _app_gone(svc, app_id: str) -> bool:
    return (await svc.client.get(f"/apps/{app_id}", headers=svc.headers("viewer"))).status_code == 404


async def test_submit_refuses_bad_requests_with_422_and_publishes_a_valid_one(fresh):
    async with trainer_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        await spec_created(fresh.rabbitmq_url, seed_spec())
        await ready(svc, "APP-A1B2C3", "1.0.0")
        kim = svc.headers("researcher", user="kim")
        for bad in ({"training_config": {"episodes": 0}}, {"training_config": {"gamma": 0}},
                    {"training_config": {"gamma": 1.5}}, {"training_config": {"learning_rate": 0}},
                    {"training_config": {"batch_size": -1}}, {"training_config": {"max_steps_per_episode": 0}},
                    {"resources": {"gpu_type": "A100", "gpu_count": 4, "memory": "12XB"}},
                    {"resources": {"gpu_type": "A100", "gpu_count": -1, "memory": "128GB"}},
                    {"resources": {"gpu_type": "A100", "gpu_count": 2, "memory": "128GB"}},
                    {"resources": {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB", "max_runtime": "forever"}},
                    {"priority": "urgent"}, {"env_vars": {"1BAD": "x"}}, {"surprise": True},
                    {"app_id": "APP-NOPE00"}, {"spec_version": "9.9.9"}):
            response = await svc.client.post("/training-requests", json={"app_id": "APP-A1B2C3", **bad}, headers=kim)
            assert response.status_code == 422, (bad, response.text)
        viewer = await svc.client.post("/training-requests", json={"app_id": "APP-A1B2C3"},
                                       headers=svc.headers("viewer"))
        assert viewer.status_code == 403

        body = {"app_id": "APP-A1B2C3", "priority": "high", "env_vars": {"RUN_MODE": "fast"},
                "training_config": {"episodes": 200, "gamma": 0.95, "simulation_seed": 7,
                                    "reward_params": {"efficiency_weight": 0.7}}}
        submitted = await svc.client.post("/training-requests", json=body, headers=kim)
        assert submitted.status_code == 202, submitted.text
        workload_id = submitted.json()["workload_id"]
        assert submitted.headers["location"] == f"/training-requests/{workload_id}"
        event = await tap.one("training.requested", workload_id)
        # waiting from the submit on; the timeline entry comes with the trainer's own consumer
        view = await wait_until(lambda: _timeline_of(svc, workload_id, 1), message="the first timeline entry")
        mine = await svc.client.get("/training-requests", params={"mine": "true"}, headers=kim)
        theirs = await svc.client.get("/training-requests", params={"mine": "true"},
                                      headers=svc.headers("researcher", user="lee"))
        unknown_status = await svc.client.get("/training-requests", params={"status": "sleeping"}, headers=kim)
    assert (event.producer, event.correlation_id) == ("trainer", workload_id)
    wire = event.data.to_wire()
    assert (wire["requester"], wire["priority"], wire["isTrainingRequest"]) == ("kim", "high", True)
    assert wire["resources"] == {"gpuType": "A100", "gpuCount": 4, "memory": "128GB", "cpu": None, "maxRuntime": "2h"}
    assert wire["trainingConfig"] == {"episodes": 200, "learningRate": 0.001, "batchSize": 64, "gamma": 0.95,
                                      "maxStepsPerEpisode": 500,
                                      "envConfig": {"simulation_seed": 7, "max_temp": 850, "min_pressure": 10},
                                      "rewardParams": {"efficiency_weight": 0.7}}
    assert wire["spec"]["env_vars"]["RUN_MODE"] == "fast" and wire["spec"]["training_config"]["episodes"] == 200
    assert [entry["type"] for entry in view["timeline"]] == ["training.requested"]
    assert view["source"] == "trainer" and view["status_label"] == "대기"
    assert [item["workload_id"] for item in mine.json()["items"]] == [workload_id]
    assert theirs.json()["total"] == 0
    assert unknown_status.status_code == 422


async def test_a_submission_follows_the_apps_latest_version_and_its_deletion(fresh):
    """The trainer keeps the specs it parsed; a newer version, or the App's deletion, recorded since must
    still decide what a submission runs (the insert checks them), or whether it is refused."""
    async with trainer_service(fresh) as svc, tapped(fresh.rabbitmq_url) as tap:
        kim = svc.headers("researcher", user="kim")

        async def submit(**fields):
            return await svc.client.post("/training-requests", json={"app_id": "APP-A1B2C3", **fields}, headers=kim)

        async def requested_version(response) -> str:
            assert response.status_code == 202, response.text
            return (await tap.one("training.requested", response.json()["workload_id"])).data.spec_version

        await spec_created(fresh.rabbitmq_url, seed_spec())
        await ready(svc, "APP-A1B2C3", "1.0.0")
        assert await requested_version(await submit()) == "1.0.0"
        assert await requested_version(await submit(spec_version="1.0.0")) == "1.0.0"
        await spec_created(fresh.rabbitmq_url, seed_spec(version="1.1.0", created_at="2026-02-10T09:00:00.000Z"))
        await ready(svc, "APP-A1B2C3", "1.1.0")
        assert await requested_version(await submit()) == "1.1.0"
        assert await requested_version(await submit(spec_version="1.0.0")) == "1.0.0"
        await emit(fresh.rabbitmq_url, "app.deleted", AppDeleted(app_id="APP-A1B2C3", deleted_by="kim"),
                   producer="builder")
        await wait_until(lambda: _app_gone(svc, "APP-A1B2C3"), message="the deleted app to disappear")
        latest, pinned = await submit(), await submit(spec_version="1.0.0")
        recorded = await svc.client.get("/training-requests", headers=kim)
    for refused in (latest, pinned):
        assert refused.status_code == 422 and refused.json()["detail"]["code"] == "app_not_ready", refused.text
    assert recorded.json()["total"] == 4


async def test_the_timeline_follows_the_whole_saga(fresh):
    async with trainer_service(fresh) as trainer, approval_service(fresh) as approval, \
            tapped(fresh.rabbitmq_url) as tap:
        await spec_created(fresh.rabbitmq_url, seed_spec())
        await ready(trainer, "APP-A1B2C3", "1.0.0")
        kim = trainer.headers("researcher", user="kim")
        workload_id = (await trainer.client.post("/training-requests", json={"app_id": "APP-A1B2C3"},
                                                 headers=kim)).json()["workload_id"]
        other_id = (await trainer.client.post("/training-requests", json={
            "app_id": "APP-A1B2C3", "training_config": {"learning_rate": 0.01}}, headers=kim)).json()["workload_id"]
        view = await request_status(trainer, workload_id, "awaiting approval")
        assert view["loop_test"]["status"] == "pending"

        started = await approval.client.post(f"/approvals/{workload_id}/loop-test",
                                             headers=approval.headers("researcher", user="kim"))
        test_run_id = started.json()["test_run_id"]
        await emit(fresh.rabbitmq_url, "looptest.completed", LoopTestCompleted(
            workload_id=workload_id, test_run_id=test_run_id, mode="rl", rewards=CONVERGING))
        await approval_status(approval, workload_id, "awaiting approval")
        await approval.client.post(f"/approvals/{workload_id}/approve", headers=approval.headers("admin", user="park"))
        await request_status(trainer, workload_id, "approved")

        # the scheduler's and the models service's part
        wl = Workload.model_validate((await tap.one("workload.approved", workload_id)).data.workload.to_wire())
        await emit(fresh.rabbitmq_url, "workload.queued", WorkloadQueued(workload_id=workload_id, priority="normal"))
        await emit(fresh.rabbitmq_url, "workload.started", WorkloadStarted(workload_id=workload_id, allocations=[
            ComponentAllocation(task_id="TASK-001", component_id="CL-REF-002", node="gpu-node-1", gpu_type="A100",
                                gpu_indices=[0, 1, 2, 3])]))
        await request_status(trainer, workload_id, "running")
        for target, reward in ((workload_id, 92.1), (other_id, 88.0)):
            await emit(fresh.rabbitmq_url, "workload.completed", WorkloadCompleted(
                workload_id=target, workload=wl.model_copy(update={"workload_id": target}), artifacts=[
                    ComponentArtifacts(task_id="TASK-001", component_id="CL-REF-002", name="rl-agent",
                                       prefix=f"s3://avatar-staging/{target}/CL-REF-002/",
                                       metrics={"final_reward": reward,
                                                **({"rewards": CONVERGING} if target == workload_id else {})})]))
        await emit(fresh.rabbitmq_url, "model.stored", ModelStored(
            workload_id=workload_id, model_id="MD-00000001", app_id="APP-A1B2C3", version=1, size_bytes=2048, files=3),
            producer="models")
        await request_status(trainer, workload_id, "model stored")
        # a completion may be folded after the model it led to (the two were delivered to different batch
        # workers): the status is final at once, the timeline fills in by time order
        view = await wait_until(lambda: _timeline_of(trainer, workload_id, 10), message="the whole timeline")
        await wait_until(lambda: _has_entry(trainer, other_id, "workload.completed"), message="the other completion")
        compared = await trainer.client.get("/training-requests/compare",
                                            params={"ids": f"{workload_id},{other_id}"}, headers=kim)
        too_few = await trainer.client.get("/training-requests/compare", params={"ids": workload_id}, headers=kim)
        unknown = await trainer.client.get("/training-requests/compare", params={"ids": f"{workload_id},WL-NOPE0000"},
                                           headers=kim)
    assert [entry["type"] for entry in view["timeline"]] == [
        "training.requested", "approval.required", "looptest.requested", "looptest.completed", "looptest.passed",
        "workload.approved", "workload.queued", "workload.started", "workload.completed", "model.stored"]
    summaries = {entry["type"]: entry["summary"] for entry in view["timeline"]}
    assert summaries["workload.approved"] == "approved by park"
    assert summaries["workload.started"] == "started on gpu-node-1"
    assert [entry["producer"] for entry in view["timeline"]][:3] == ["trainer", "approval", "approval"]
    assert view["loop_test"]["status"] == "passed" and view["loop_test"]["results"]["convergence"] is True
    assert view["model"] == {"model_id": "MD-00000001", "version": 1, "size_bytes": 2048, "files": 3}
    assert view["final_metrics"] == {"rl-agent.final_reward": 92.1}
    assert compared.json()["metrics"] == {"rl-agent.final_reward": {workload_id: 92.1, other_id: 88.0}}
    assert [r["training_config"]["learningRate"] for r in compared.json()["requests"]] == [0.001, 0.01]
    # TR-08's overlaid curves: the reward per episode of the run whose trainer wrote one
    assert [r["reward_curve"] for r in compared.json()["requests"]] == [
        {"component": "rl-agent", "episodes": list(range(1, 11)), "rewards": CONVERGING, "total": 10}, None]
    assert too_few.status_code == 422 and unknown.status_code == 404 and "WL-NOPE0000" in unknown.json()["detail"]


async def test_an_external_training_request_is_processed_and_shows_in_the_history(fresh):
    """Another system publishes plain JSON written against contracts/schemas, with no AVATAR code."""
    data = {
        "workloadId": "EXT-MES-0042", "appId": "APP-5MA11A", "specVersion": "1.0.0", "name": "nightly retrain",
        "requester": "mes-system", "priority": "low", "submittedAt": "2026-02-09T02:00:00Z",
        "resources": {"gpuType": "A100", "gpuCount": 1, "memory": "16GB", "maxRuntime": "1h"},
        "isTrainingRequest": True, "trainingConfig": {"episodes": 300},
        "spec": seed_spec_wire(app_id="APP-5MA11A", tasks=[{
            "task_id": "TASK-001", "name": "train", "components": [{
                "component_id": "CL-REF-001", "name": "rl-agent",
                "image": {"registry": "registry.avatar.io/rl-agent", "tag": "2.0"},
                "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "16GB"}, "params": {}}],
            "workflow": []}], imported_apps=[]),
    }
    message = {"event_id": str(uuid.uuid4()), "type": "training.requested", "version": 1,
               "occurred_at": "2026-02-09T02:00:01Z", "producer": "mes-system", "correlation_id": "EXT-MES-0042",
               "causation_id": None, "data": data}
    jsonschema.validate(message, json.loads((SCHEMAS / "training.requested.json").read_text()))
    async with trainer_service(fresh) as trainer, approval_service(fresh):
        # a known App at a ready version, and the system requesting on its own behalf: accepted
        await spec_created(fresh.rabbitmq_url, AppSpec.model_validate(data["spec"]))
        await ready(trainer, "APP-5MA11A", "1.0.0")
        await publish(fresh.rabbitmq_url, "training.requested", json.dumps(message).encode())
        view = await request_status(trainer, "EXT-MES-0042", "approved")
        history = await trainer.client.get("/training-requests", params={"app_id": "APP-5MA11A"},
                                           headers=trainer.headers("viewer"))
    assert [(entry["type"], entry["producer"]) for entry in view["timeline"]] == [
        ("training.requested", "mes-system"), ("training.requested", "trainer"), ("workload.approved", "approval")]
    assert view["timeline"][1]["summary"] == "accepted for approval: submitted by mes-system (low priority)"
    assert view["timeline"][2]["summary"] == "approved automatically (below the approval threshold)"
    assert (view["source"], view["requester"], view["priority"]) == ("mes-system", "mes-system", "low")
    assert view["training_config"]["episodes"] == 300 and view["training_config"]["gamma"] == 0.99
    [item] = history.json()["items"]
    assert (item["workload_id"], item["status"], item["source"]) == ("EXT-MES-0042", "approved", "mes-system")


async def test_cancel_is_for_the_requester_or_an_admin_and_publishes_one_request(fresh):
    async with trainer_service(fresh) as trainer, approval_service(fresh), tapped(fresh.rabbitmq_url) as tap:
        await spec_created(fresh.rabbitmq_url, seed_spec())
        await ready(trainer, "APP-A1B2C3", "1.0.0")
        kim = trainer.headers("researcher", user="kim")
        workload_id = (await trainer.client.post("/training-requests", json={"app_id": "APP-A1B2C3"},
                                                 headers=kim)).json()["workload_id"]
        await request_status(trainer, workload_id, "awaiting approval")
        lee = await trainer.client.post(f"/training-requests/{workload_id}/cancel",
                                        headers=trainer.headers("researcher", user="lee"))
        viewer = await trainer.client.post(f"/training-requests/{workload_id}/cancel", headers=trainer.headers("viewer"))
        missing = await trainer.client.post("/training-requests/WL-NOPE0000/cancel", headers=kim)
        first = await trainer.client.post(f"/training-requests/{workload_id}/cancel", headers=kim)
        second = await trainer.client.post(f"/training-requests/{workload_id}/cancel", headers=kim)
        requested = await tap.one("workload.cancel_requested", workload_id)
        # nobody approved it yet, so the approval service ends it
        view = await request_status(trainer, workload_id, "cancelled")
        assert await tap.settled_count("workload.cancel_requested", workload_id) == 1
        ended = await trainer.client.post(f"/training-requests/{workload_id}/cancel",
                                          headers=trainer.headers("admin"))
    assert (lee.status_code, viewer.status_code, missing.status_code) == (403, 403, 404)
    assert first.status_code == second.status_code == 202
    assert first.json()["cancel_requested_by"] == second.json()["cancel_requested_by"] == "kim"
    assert requested.data.requested_by == "kim" and requested.producer == "trainer"
    assert [entry["type"] for entry in view["timeline"]][-2:] == ["workload.cancel_requested", "workload.cancelled"]
    assert view["cancel_requested_by"] == "kim" and view["outcome"] == "cancelled by kim"
    assert ended.status_code == 409 and ended.json()["detail"]["code"] == "already_ended"


async def test_events_before_their_request_still_make_the_timeline(fresh):
    """Delivery order is not guaranteed across producers: a status event may beat the request."""
    spec = small_spec((1, "8GB"))
    early = WorkloadCancelled(workload_id="WL-0E4A1101", cancelled_by="admin", was_running=False)
    async with trainer_service(fresh) as trainer:
        await spec_created(fresh.rabbitmq_url, spec)
        await ready(trainer, spec.app_id, spec.version)
        await emit(fresh.rabbitmq_url, "workload.cancelled", early)
        await emit(fresh.rabbitmq_url, "training.requested",
                   workload(spec, workload_id="WL-0E4A1101", requester="other"), producer="other")
        view = await request_status(trainer, "WL-0E4A1101", "cancelled")
        listed = await trainer.client.get("/training-requests", params={"status": "cancelled"},
                                          headers=trainer.headers("viewer"))
    assert {entry["type"] for entry in view["timeline"]} == {"training.requested", "workload.cancelled"}
    assert [item["workload_id"] for item in listed.json()["items"]] == ["WL-0E4A1101"]  # the stored status too



async def test_a_late_event_is_folded_in_time_order(fresh):
    """The status is the timeline folded in time order, whatever order the events arrive in: a failure
    that happened before the model was stored, delivered after it, makes the request failed."""
    spec = small_spec((1, "8GB"))
    request = make_event("training.requested", workload(spec, workload_id="WL-1A7E0001", requester="other"),
                         producer="other", correlation_id="WL-1A7E0001")
    stored = make_event("model.stored", ModelStored(workload_id="WL-1A7E0001", model_id="MD-00000009", app_id=spec.app_id,
                                                    version=1, size_bytes=1, files=1),
                        producer="models", correlation_id="WL-1A7E0001")
    failed = make_event("workload.failed", WorkloadFailed(workload_id="WL-1A7E0001", stage="run", reason="exit code 1"),
                        producer="scheduler", correlation_id="WL-1A7E0001")
    stored = stored.model_copy(update={"occurred_at": request.occurred_at + timedelta(seconds=2)})
    failed = failed.model_copy(update={"occurred_at": request.occurred_at + timedelta(seconds=1)})
    async with trainer_service(fresh) as trainer:
        await spec_created(fresh.rabbitmq_url, spec)
        await ready(trainer, spec.app_id, spec.version)
        await publish(fresh.rabbitmq_url, "training.requested", request)
        await request_status(trainer, "WL-1A7E0001", "waiting")
        await publish(fresh.rabbitmq_url, "model.stored", stored)
        await request_status(trainer, "WL-1A7E0001", "model stored")
        await publish(fresh.rabbitmq_url, "workload.failed", failed)
        view = await request_status(trainer, "WL-1A7E0001", "failed")
        listed = await trainer.client.get("/training-requests", params={"status": "failed"},
                                          headers=trainer.headers("viewer"))
    assert _published_elsewhere(view) == ["training.requested", "workload.failed", "model.stored"]
    assert [item["workload_id"] for item in listed.json()["items"]] == ["WL-1A7E0001"]


async def test_a_backlog_of_saga_events_handled_in_batches_makes_the_same_timelines(fresh):
    """After a trainer restart under load its queue holds many workloads' events: they are appended in
    batches (one statement for the first event of each workload in a batch), and every workload still
    gets its whole timeline once, in time order, and the status its timeline folds to, whatever
    arrives late, twice or before its request."""
    from services.kit import metrics

    spec = small_spec((1, "8GB"))
    backlog, expected = [], {}
    for i in range(24):
        workload_id = f"WL-BA7C{i:04d}"
        request = make_event("training.requested", workload(spec, workload_id=workload_id, requester="other"),
                             producer="other", correlation_id=workload_id)
        at = request.occurred_at
        steps = [make_event(t, data, producer="scheduler", correlation_id=workload_id) for t, data in (
            ("workload.queued", WorkloadQueued(workload_id=workload_id, priority="normal")),
            ("workload.started", WorkloadStarted(workload_id=workload_id, allocations=[])),
            ("workload.failed", WorkloadFailed(workload_id=workload_id, stage="run", reason="exit code 1")))]
        steps = [step.model_copy(update={"occurred_at": at + timedelta(seconds=n + 1)}) for n, step in enumerate(steps)]
        queued, started, failed = steps
        if i % 3 == 0:  # the failure is delivered before the start that preceded it
            order = [request, queued, failed, started]
        elif i % 3 == 1:  # a step before the request it is about, and a step delivered twice
            order = [queued, request, started, started, failed]
        else:
            order = [request, queued, started, failed]
        backlog.append(order)
        expected[workload_id] = ["training.requested", "workload.queued", "workload.started", "workload.failed"]
    async with trainer_service(fresh) as trainer:  # the topology: the events wait in the trainer's queue
        await spec_created(fresh.rabbitmq_url, spec)
        await ready(trainer, spec.app_id, spec.version)
    for round_ in range(5):  # interleaved, as many producers would deliver them
        for order in backlog:
            if round_ < len(order):
                await publish(fresh.rabbitmq_url, order[round_].type, order[round_])
    batched = metrics.BATCHED_EVENTS.labels("trainer")._value.get()
    async with trainer_service(fresh) as trainer:
        views = {workload_id: await request_status(trainer, workload_id, "failed") for workload_id in expected}
        # a start delivered after the failure is appended after the status is already failed
        for workload_id, view in views.items():
            if len(view["timeline"]) < len(expected[workload_id]) + 1:  # with the trainer's acceptance
                views[workload_id] = await wait_until(lambda: _timeline_of(trainer, workload_id,
                                                                           len(expected[workload_id]) + 1),
                                                      message=f"the whole timeline of {workload_id}")
    assert {workload_id: _published_elsewhere(view) for workload_id, view in views.items()} == expected
    assert all(view["status"] == "failed" for view in views.values())
    assert metrics.BATCHED_EVENTS.labels("trainer")._value.get() - batched > 24, "the backlog was not batched"
