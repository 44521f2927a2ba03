"""The object store going away and the service restarting mid-copy: nothing is lost, nothing is stored twice."""
import asyncio
import os

from services.kit.s3server import S3Server
from services.models.main import create_app
from tests.integration.models.helpers import (STAGING, EventTap, completed_event, models_settings, publish, stage,
                                              stored, unique, workload)
from tests.support.infra import free_port, wait_until
from tests.support.services import running_service


class RestartableS3:
    """A real S3 server (the stand-in) on a fixed port that can be stopped and started again.

    In-process stand-ins share moto's one backend, so what the session's server holds is served here too."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: S3Server | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> "RestartableS3":
        self._server = S3Server(port=self.port).start()
        return self

    def down(self) -> None:
        self._server.stop()  # closes the listening socket and every connection: refused, as by a dead server


async def retries(svc) -> float:
    text = (await svc.client.get("/metrics")).text
    line = next(l for l in text.splitlines() if l.startswith("avatar_model_store_retries_total "))
    return float(line.split()[1])


async def test_store_outage_is_retried_and_the_model_is_stored_when_the_store_returns(fresh, s3):
    app_id, flaky = unique("APP"), RestartableS3().up()
    tap = EventTap(fresh.rabbitmq_url)
    try:
        async with running_service(create_app, models_settings(fresh, s3_endpoint=flaky.endpoint)) as svc:
            work = workload(app_id, unique("WL"))
            body = os.urandom(200_000)
            artifacts = [stage(s3, work.workload_id, "C-agent", "rl-agent", {"policy.npz": body})]
            retries_before = await retries(svc)
            flaky.down()
            await publish(fresh.rabbitmq_url, completed_event(work, artifacts))

            async def retried_a_few_times():
                return await retries(svc) >= retries_before + 3
            await wait_until(retried_a_few_times, 20, message="three failed attempts")
            [failed] = await tap.wait_for("model.store_failed")
            assert failed["data"]["workload_id"] == work.workload_id and failed["data"]["will_retry"] is True
            page = (await svc.client.get("/models", params={"app_id": app_id}, headers=svc.headers("viewer"))).json()
            [pending] = page["items"]
            assert pending["status"] == "pending" and pending["store_attempts"] >= 3 and pending["store_error"]
            not_ready = await svc.client.get("/readyz")
            assert not_ready.status_code == 503 and "s3" in not_ready.json()["failed"]
            # the staged artifacts stay until a verified copy exists
            assert [o.object_name for o in s3.list_objects(STAGING, prefix=f"{work.workload_id}/", recursive=True)]

            flaky.up()
            [model] = await stored(svc, {"app_id": app_id}, timeout=20)
            await tap.wait_for("model.stored")
            await tap.poll()
            assert len(tap.of("model.store_failed")) == 1  # once per outage, not once per attempt
            download = await svc.client.get(f"/models/{model['model_id']}/download",
                                            params={"file": "rl-agent/policy.npz"}, headers=svc.headers("viewer"))
            assert download.content == body

            flaky.down()
            unavailable = await svc.client.get(f"/models/{model['model_id']}/download",
                                               params={"file": "rl-agent/policy.npz"}, headers=svc.headers("viewer"))
            assert unavailable.status_code == 503 and unavailable.headers["retry-after"] == "5"
            assert unavailable.json()["detail"]["dependency"] == "s3"
            assert "S3" in unavailable.json()["detail"]["message"] and "unreachable" in unavailable.json()["detail"]["message"]
            flaky.up()
    finally:
        flaky.down()


async def _staged_model(fresh, s3, sizes):
    app_id = unique("APP")
    work = workload(app_id, unique("WL"))
    files = {f"part-{n}.bin": os.urandom(size) for n, size in enumerate(sizes)}
    return app_id, work, files, [stage(s3, work.workload_id, "C-agent", "rl-agent", files)]


async def _files(pool):
    return {r["path"]: r["stored_at"] for r in await pool.fetch("SELECT path, stored_at FROM model_files")}


async def test_a_restart_mid_copy_resumes_the_model_without_copying_files_twice(fresh, s3):
    app_id, work, files, artifacts = await _staged_model(fresh, s3, [1000, 2000, 3000])
    settings = models_settings(fresh)
    async with running_service(create_app, settings) as first:
        first.app.state.models_worker.after_file = lambda *_: asyncio.Event().wait()  # stalls after one file
        await publish(fresh.rabbitmq_url, completed_event(work, artifacts))
        await wait_until(lambda: _files(first.platform.pool), 10, message="the first file stored")
    # a graceful stop hands the model back at once
    row = await _model_row(fresh)
    assert row["status"] == "pending" and row["lease_owner"] is None
    copied_before = await _files_of(fresh)
    assert len(copied_before) == 1

    async with running_service(create_app, settings) as second:
        [model] = await stored(second, {"app_id": app_id})
        after = await _files(second.platform.pool)
    assert model["file_count"] == 3 and model["size_bytes"] == 6000
    [(path, stored_at)] = copied_before.items()
    assert after[path] == stored_at  # not copied again


async def test_a_crashed_replicas_model_is_taken_over_when_its_lease_expires(fresh, s3):
    app_id, work, files, artifacts = await _staged_model(fresh, s3, [1000, 2000])
    settings = models_settings(fresh)
    async with running_service(create_app, settings) as crashed:
        crashed.app.state.models_worker.after_file = lambda *_: asyncio.Event().wait()
        await publish(fresh.rabbitmq_url, completed_event(work, artifacts))
        await wait_until(lambda: _files(crashed.platform.pool), 10, message="the first file stored")
        # from now on the lease belongs to a replica that will never renew or release it
        await crashed.platform.pool.execute(
            "UPDATE models SET lease_owner = 'crashed-replica', lease_until = now() + interval '1 second'")
    async with running_service(create_app, settings) as survivor:
        [model] = await stored(survivor, {"app_id": app_id}, timeout=15)
    assert model["file_count"] == 2


async def _model_row(infra):
    import asyncpg
    conn = await asyncpg.connect(infra.postgres_url)
    try:
        return await conn.fetchrow("SELECT status, lease_owner FROM models.models")
    finally:
        await conn.close()


async def _files_of(infra):
    import asyncpg
    conn = await asyncpg.connect(infra.postgres_url)
    try:
        return {r["path"]: r["stored_at"] for r in await conn.fetch("SELECT path, stored_at FROM models.model_files")}
    finally:
        await conn.close()
