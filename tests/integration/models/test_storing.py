import asyncio
import hashlib
import os

from services.kit import metrics as kit_metrics
from services.models.main import create_app
from services.models.store import NOTIFY_CHANNEL
from tests.integration.models.helpers import (STAGING, EventTap, completed_event, models_settings, publish, stage,
                                              stored, unique, workload)
from tests.support.infra import wait_until
from tests.support.services import running_service


async def test_completed_workload_is_stored_with_checksums_and_versions_per_app(fresh, s3):
    app_id = unique("APP")
    policy, weights = os.urandom(300_000), os.urandom(6 * 1024 * 1024 + 7)  # the second one goes up in two parts
    tap = EventTap(fresh.rabbitmq_url)
    async with running_service(create_app, models_settings(fresh)) as svc:
        for n in (1, 2):
            work = workload(app_id, unique("WL"))
            artifacts = [
                stage(s3, work.workload_id, "C-env", "env-simulator", {"env.json": b'{"max_temp": 1500}'},
                      metrics={"states": 40}),
                stage(s3, work.workload_id, "C-agent", "rl-agent",
                      {"policy.npz": policy, "weights/big.bin": weights, "metrics.json": b"{}"},
                      metrics={"final_reward": 10.0 * n, "avg_reward": 5.0, "rewards": [1.0, 10.0 * n]}),
            ]
            await publish(fresh.rabbitmq_url, completed_event(work, artifacts))
            await stored(svc, {"app_id": app_id}, count=n)

        versions = (await svc.client.get(f"/apps/{app_id}/models", headers=svc.headers("viewer"))).json()["versions"]
        assert [v["version"] for v in versions] == [2, 1]
        assert versions[0]["name"] == "rl-designopt-v2"
        latest = (await svc.client.get(f"/models/{versions[0]['model_id']}", headers=svc.headers("viewer"))).json()

    files = {f["path"]: f for f in latest["files"]}
    assert set(files) == {"env-simulator/env.json", "rl-agent/policy.npz", "rl-agent/weights/big.bin",
                          "rl-agent/metrics.json"}
    assert files["rl-agent/weights/big.bin"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert files["rl-agent/weights/big.bin"]["size_bytes"] == len(weights)
    assert files["rl-agent/policy.npz"]["sha256"] == hashlib.sha256(policy).hexdigest()
    assert {f["verified_by"] for f in files.values()} == {"etag"}
    assert latest["size_bytes"] == sum(f["size_bytes"] for f in files.values()) and latest["file_count"] == 4
    stored_copy = s3.get_object("avatar-models", f"{app_id}/2/rl-agent/weights/big.bin").read()
    assert stored_copy == weights

    # MD-03: the spec snapshot, the training configuration, run-log links and merged metrics
    assert latest["spec"]["app_id"] == app_id and latest["spec_version"] == "1.0.0"
    assert latest["training_config"]["episodes"] == 200
    assert latest["workload"]["requester"] == "researcher-1"
    logs = {log["component"]: log["url"] for log in latest["run_logs"]}
    assert logs["rl-agent"] == f"s3://avatar-logs/logs/{latest['workload_id']}/C-agent.log"
    assert latest["metrics"]["summary"]["final_reward"] == 20.0
    assert latest["metrics"]["components"]["env-simulator"] == {"states": 40}

    # model.stored reached the saga; the staged originals went only after the verified copy was recorded
    announced = {e["data"]["version"]: e["data"] for e in await tap.wait_for("model.stored", 2)}
    assert announced[2] == {"workload_id": latest["workload_id"], "model_id": latest["model_id"], "app_id": app_id,
                            "version": 2, "size_bytes": latest["size_bytes"], "files": 4}
    assert list(s3.list_objects(STAGING, prefix=f"{latest['workload_id']}/", recursive=True)) == []


async def test_duplicate_workload_completed_stores_one_model(fresh, s3):
    app_id = unique("APP")
    work = workload(app_id, unique("WL"))
    artifacts = [stage(s3, work.workload_id, "C-agent", "rl-agent", {"policy.npz": b"weights"})]
    event = completed_event(work, artifacts)
    tap = EventTap(fresh.rabbitmq_url)
    async with running_service(create_app, models_settings(fresh, models_delete_staged=False)) as svc:
        await publish(fresh.rabbitmq_url, event)
        await publish(fresh.rabbitmq_url, event)  # the same message delivered twice
        await publish(fresh.rabbitmq_url, completed_event(work, artifacts))  # the same fact, a new event id

        async def all_handled():
            return await svc.platform.pool.fetchval("SELECT count(*) FROM inbox") == 2  # the exact duplicate is skipped
        await wait_until(all_handled, 10, message="both distinct deliveries handled")
        await stored(svc, {"app_id": app_id})
        page = (await svc.client.get("/models", params={"app_id": app_id}, headers=svc.headers("viewer"))).json()
        assert page["total"] == 1 and page["items"][0]["version"] == 1
        await tap.wait_for("model.stored")
    await tap.poll()
    assert len(tap.of("model.stored")) == 1


async def test_model_without_outputs_is_stored_empty(fresh, s3):
    app_id = unique("APP")
    work = workload(app_id, unique("WL"))
    async with running_service(create_app, models_settings(fresh)) as svc:
        await publish(fresh.rabbitmq_url, completed_event(work, [
            stage(s3, work.workload_id, "C-agent", "rl-agent", {})]))
        [model] = await stored(svc, {"app_id": app_id})
        assert model["file_count"] == 0 and model["size_bytes"] == 0
        archive = await svc.client.get(f"/models/{model['model_id']}/download", headers=svc.headers("viewer"))
        assert archive.status_code == 200 and set(archive.content) == {0}


async def test_unusable_artifact_location_is_dead_lettered(fresh, s3):
    work = workload(unique("APP"), unique("WL"))
    bad = stage(s3, work.workload_id, "C-agent", "rl-agent", {"a": b"1"}).model_copy(update={"prefix": "ftp://x/y/"})
    async with running_service(create_app, models_settings(fresh)) as svc:
        await publish(fresh.rabbitmq_url, completed_event(work, [bad]))
        [dead] = await EventTap(fresh.rabbitmq_url, queue="models.dlq").wait_for("workload.completed")
        assert dead["data"]["workload_id"] == work.workload_id
        assert (await svc.client.get("/models", headers=svc.headers("viewer"))).json()["total"] == 0


async def test_concurrent_completions_of_one_app_get_consecutive_versions(fresh, s3):
    """A sweep: many workloads of one App complete at once; each gets its own version, none is skipped."""
    app_id = unique("APP")
    works = [workload(app_id, unique("WL")) for _ in range(20)]
    events = [completed_event(work, [stage(s3, work.workload_id, "C-agent", "rl-agent", {"policy.npz": b"w"})])
              for work in works]
    async with running_service(create_app, models_settings(fresh)) as svc:
        for event in events:  # all queued before the service takes them, several handled at once
            await publish(fresh.rabbitmq_url, event)
        await stored(svc, {"app_id": app_id}, count=len(works))
        rows = await svc.platform.pool.fetch("SELECT workload_id, version, name FROM models WHERE app_id = $1", app_id)
    assert sorted(row["version"] for row in rows) == list(range(1, len(works) + 1))
    assert {row["workload_id"] for row in rows} == {work.workload_id for work in works}
    assert all(row["name"] == f"rl-designopt-v{row['version']}" for row in rows)


async def test_nothing_pending_means_nothing_due_so_an_idle_worker_sleeps_its_poll_interval(fresh, s3):
    from services.models import store

    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh)) as svc:
        work = workload(app_id, unique("WL"))
        await publish(fresh.rabbitmq_url, completed_event(work, [stage(s3, work.workload_id, "C-agent", "rl-agent",
                                                                         {"policy.npz": b"p"})]))
        await stored(svc, {"app_id": app_id}, count=1)
        pool = svc.app.state.platform.pool
        def waiting(claimed: store.Claimed) -> tuple[int, float | None]:
            return claimed.pending, claimed.due

        assert waiting(await store.claim_due(pool, "test", 30, 0)) == (0, None)  # was (0, 0.0): a 50 ms poll forever

        await pool.execute("UPDATE models SET status = 'pending', next_attempt_at = now() + interval '30 seconds'"
                           " WHERE workload_id = $1", work.workload_id)
        pending, due = waiting(await store.claim_due(pool, "test", 30, 0))
        assert pending == 1 and 28 < due <= 30
        await pool.execute("UPDATE models SET next_attempt_at = now() - interval '5 seconds',"
                           " lease_until = now() - interval '1 second' WHERE workload_id = $1", work.workload_id)
        assert waiting(await store.claim_due(pool, "test", 30, 0)) == (1, 0.0)
        await pool.execute("UPDATE models SET status = 'stored' WHERE workload_id = $1", work.workload_id)


async def test_a_completion_wakes_the_store_worker_of_its_process_without_a_notify(fresh, s3):
    """The worker's poll is a minute here: only the wake-up after the completion's commit stores the
    model in time; handler and worker share the process, so no NOTIFY is sent for it."""
    def wakeups(delivery: str) -> float:
        return kit_metrics.WAKEUPS.labels("models", NOTIFY_CHANNEL, delivery)._value.get()

    app_id = unique("APP")
    async with running_service(create_app, models_settings(fresh, models_poll_seconds=60)) as svc:
        await asyncio.sleep(0.5)  # the worker's first look is over: from here on it sleeps
        local, notified = wakeups("local"), wakeups("notify")
        work = workload(app_id, unique("WL"))
        artifacts = [stage(s3, work.workload_id, "C-agent", "rl-agent", {"policy.npz": b"weights"})]
        await publish(fresh.rabbitmq_url, completed_event(work, artifacts))
        await stored(svc, {"app_id": app_id}, timeout=10)
    assert wakeups("local") > local
    assert wakeups("notify") == notified
