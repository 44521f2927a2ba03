"""Staging artifacts on the real S3 server, publishing workload.completed on the real broker, reading events."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

import aio_pika

from tests.support import broker
from minio import Minio

from contracts.events import AppOwnerChanged, AppSpecCreated, ComponentArtifacts, WorkloadCompleted, make_event
from contracts.spec import AppSpec
from contracts.topology import EXCHANGE
from contracts.workload import Workload
from services.kit.objectstore import ensure_buckets, make_client
from services.models.settings import ModelsSettings
from tests.support.infra import wait_until

STAGING = "avatar-staging"
LOGS = "avatar-logs"


def models_settings(infra, **overrides: Any) -> ModelsSettings:
    values = dict(models_poll_seconds=0.2, models_retry_base_seconds=0.2, models_retry_cap_seconds=1.0,
                  models_lease_seconds=5, models_part_size=5 * 1024 * 1024)
    values.update(overrides)
    return ModelsSettings(**{**infra.settings().model_dump(), **values})


def s3_client(infra) -> Minio:
    client = make_client(infra.settings())
    ensure_buckets(client, STAGING, LOGS)
    return client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def workload(app_id: str, workload_id: str, app_name: str = "RL DesignOpt") -> Workload:
    spec = AppSpec.model_validate({
        "app_id": app_id, "name": app_name, "version": "1.0.0", "env_vars": {"SIM_MODE": "fast"},
        "tasks": [{"task_id": "T-1", "name": "train", "components": [
            {"component_id": "C-env", "name": "env-simulator", "image": {"registry": "reg/env", "tag": "1"},
             "resources": {"gpu_type": "A100", "gpu_count": 0, "memory": "1GB"}},
            {"component_id": "C-agent", "name": "rl-agent", "image": {"registry": "reg/agent", "tag": "1"},
             "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "8GB"}}],
            "workflow": [{"from": "C-env", "to": "C-agent"}]}],
        "training_config": {"episodes": 200, "env_config": {"max_temp": 1500}},
        "created_at": "2026-02-09T09:00:00.000Z"})
    return Workload.model_validate({
        "workloadId": workload_id, "appId": app_id, "specVersion": "1.0.0", "name": f"{app_name} run",
        "requester": "researcher-1", "submittedAt": datetime.now(timezone.utc).isoformat(),
        "resources": {"gpuType": "A100", "gpuCount": 1, "memory": "8GB"},
        "trainingConfig": {"episodes": 200, "envConfig": {"max_temp": 1500}}, "spec": spec.to_wire()})


def stage(client: Minio, workload_id: str, component_id: str, name: str, files: dict[str, bytes],
          metrics: dict[str, Any] | None = None, log: bytes = b"Episode 0: reward=1.0\n") -> ComponentArtifacts:
    """Write a component's outputs where the scheduler would have them, like a finished component does."""
    import io

    prefix = f"{workload_id}/{component_id}/"
    for path, body in files.items():
        client.put_object(STAGING, prefix + path, io.BytesIO(body), len(body))
    log_key = f"logs/{workload_id}/{component_id}.log"
    client.put_object(LOGS, log_key, io.BytesIO(log), len(log))
    return ComponentArtifacts(task_id="T-1", component_id=component_id, name=name,
                              prefix=f"s3://{STAGING}/{prefix}", log=f"s3://{LOGS}/{log_key}", metrics=metrics or {})


def completed_event(work: Workload, artifacts: list[ComponentArtifacts]):
    return make_event("workload.completed", WorkloadCompleted(workload_id=work.workload_id, artifacts=artifacts,
                                                              workload=work),
                      producer="scheduler", correlation_id=work.workload_id)


def spec_created_event(app_id: str, owner: str | None):
    """The builder generated the App's spec while `owner` owned it (None: the platform's)."""
    return make_event("app.spec_created", AppSpecCreated(app_id=app_id, version="1.0.0", owner=owner,
                                                          spec=workload(app_id, "WL-spec").spec),
                      producer="builder", correlation_id=app_id)


def owner_changed_event(app_id: str, owner: str, previous: str | None, by: str = "root"):
    """An admin gave the App to `owner`."""
    return make_event("app.owner_changed", AppOwnerChanged(app_id=app_id, owner=owner, previous=previous,
                                                           changed_by=by),
                      producer="builder", correlation_id=app_id)


async def announce(svc, infra, event) -> None:
    """Publish the builder's event about an App's owner and wait until the models service knows it."""
    await publish(infra.rabbitmq_url, event)

    async def known():
        return await svc.platform.pool.fetchval(
            "SELECT true FROM app_owners WHERE app_id = $1 AND updated_at >= $2",
            event.data.app_id, event.occurred_at)
    await wait_until(known, 10, interval=0.05, message=f"{event.type} of {event.data.app_id} consumed")


async def owned_by(svc, infra, app_id: str, owner: str | None) -> None:
    """The models service knows `owner` owns the App (from its app.spec_created)."""
    await announce(svc, infra, spec_created_event(app_id, owner))


async def publish(rabbitmq_url: str, event) -> None:
    """Put one event straight onto the exchange, as another system would."""
    await broker.publish(rabbitmq_url, event.type, event)


class EventTap:
    """Reads what reached the trainer's queue (it is bound to every model.* event of the saga)."""

    def __init__(self, rabbitmq_url: str, queue: str = "trainer.events") -> None:
        self.rabbitmq_url = rabbitmq_url
        self.queue = queue
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def bound(cls, rabbitmq_url: str, *routing_keys: str) -> "EventTap":
        """A tap on a queue of its own, for events no service consumes (e.g. model.alias_moved)."""
        tap = cls(rabbitmq_url, queue=unique("test.tap"))
        connection = await aio_pika.connect(rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(tap.queue, durable=False, auto_delete=False)
            for key in routing_keys:
                await queue.bind(EXCHANGE, routing_key=key)
        return tap

    async def poll(self) -> list[dict[str, Any]]:
        connection = await aio_pika.connect(self.rabbitmq_url)
        async with connection:
            channel = await connection.channel()
            queue = await channel.get_queue(self.queue)
            while (message := await queue.get(fail=False)) is not None:
                self.events.append(json.loads(message.body))
                await message.ack()
        return self.events

    def of(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == event_type]

    async def wait_for(self, event_type: str, count: int = 1, timeout: float = 10) -> list[dict[str, Any]]:
        async def enough():
            await self.poll()
            return len(self.of(event_type)) >= count
        await wait_until(enough, timeout, interval=0.1, message=f"{count} {event_type} event(s) on {self.queue}")
        return self.of(event_type)


async def stored(svc, query: dict, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
    """Wait until the service lists `count` stored models matching the query."""
    async def ready():
        page = (await svc.client.get("/models", params=query, headers=svc.headers("viewer"))).json()
        done = [m for m in page["items"] if m["status"] == "stored"]
        return done if len(done) >= count else None
    return await wait_until(ready, timeout, interval=0.1, message=f"{count} stored model(s) for {query}")


async def make_model(svc, infra, s3, app_id: str, files: dict[str, bytes] | None = None,
                     metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """Complete one workload of the App and wait for its model to be stored; returns the model's detail."""
    work = workload(app_id, unique("WL"))
    artifact = stage(s3, work.workload_id, "C-agent", "rl-agent", files or {"policy.npz": b"policy"}, metrics=metrics)
    before = (await svc.client.get("/models", params={"app_id": app_id, "status": "stored"},
                                   headers=svc.headers("viewer"))).json()["total"]
    await publish(infra.rabbitmq_url, completed_event(work, [artifact]))
    await stored(svc, {"app_id": app_id}, count=before + 1)
    page = (await svc.client.get("/models", params={"q": work.workload_id}, headers=svc.headers("viewer"))).json()
    [summary] = page["items"]
    return (await svc.client.get(f"/models/{summary['model_id']}", headers=svc.headers("viewer"))).json()
