"""The object store is down for the models service when a run completes: the model is stored once the store
is back, and nothing is lost (issue: the whole saga, "object store down when the run completes").

S3 goes away for the models service alone: on the shared stack it reaches S3 through a proxy the test owns
(`models_s3`, tests/e2e/conftest.py). Cutting it refuses new connections and cuts open ones, what a models
replica sees when the store's host is gone; the S3 server itself keeps running with the artifacts the
component staged (it keeps objects in memory: stopping it would lose them, which a real store does not),
and the scheduler and the component still reach it directly.
"""
from __future__ import annotations

import hashlib
import json
from urllib.parse import urlsplit

import pytest
from minio import Minio

from services.kit.demo import Demo
from tests.e2e.test_saga import PROBE_SMALL, probe_app
from tests.support.broker import Message, tapped
from tests.support.infra import S3_ACCESS_KEY, S3_SECRET_KEY, wait_until

OUTPUT_BYTES = 300_000
RUN_SECONDS = 2  # the probe sleeps this long after staging its output: the window to take the store away


def probe_output(size: int) -> bytes:
    """What the probe component writes to output.bin (components/probe/__main__.py)."""
    pattern = b"avatar-probe\n"
    return (pattern * (size // len(pattern) + 1))[:size]


@pytest.fixture(scope="module")
def demo(base, settings):
    return Demo(base, settings, timeout=60, episodes=5)


@pytest.fixture
def store_switch(models_s3):
    """The models service's path to S3; given back whatever the test does, the shared stack needs it."""
    try:
        yield models_s3
    finally:
        models_s3.restore()


class Seen:
    """Events of one workload on avatar.events, in the order the broker delivered them."""

    def __init__(self) -> None:
        self.workload_id: str | None = None
        self.events: list[dict] = []

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]

    def count(self, type_: str) -> int:
        return self.types().count(type_)


async def test_store_down_when_the_run_completes_then_the_model_is_stored_once_it_is_back(
        demo, stack, store_switch, infra):
    assert store_switch.is_up and store_switch.connections > 0  # the models service reaches S3 through it
    components = demo.library_components()
    app_id = probe_app(demo, components, "Store-Down", {"sleep_s": RUN_SECONDS, "output_bytes": OUTPUT_BYTES})
    seen = Seen()
    cut_after: list[list[str]] = []  # what had been seen of the workload when the store was taken away

    def on_message(message: Message) -> None:
        event = json.loads(message.body)
        data = event.get("data") or {}
        if seen.workload_id is None or seen.workload_id not in (
                event.get("correlation_id"), data.get("workload_id"), data.get("workloadId")):
            return
        seen.events.append(event)
        if event["type"] == "workload.started" and not cut_after:
            store_switch.cut()  # the run is under way: the store goes down before it completes
            cut_after.append(seen.types())

    async with tapped(f"amqp://guest:guest@127.0.0.1:5672/{stack.vhost}", on_message):
        # the broker's deliveries wait while this blocks the event loop: none is missed before the id is known
        workload = seen.workload_id = demo.submit(app_id, PROBE_SMALL, priority="normal", episodes=5,
                                                  name="store down at completion")
        try:
            await wait_until(lambda: cut_after, 30, 0.02, "the run to start")
            # ---- the store is down: the run completes, the models service fails and keeps the model pending
            await wait_until(lambda: seen.count("model.store_failed"), 30, message="model.store_failed")
            assert "workload.completed" not in cut_after[0], f"the store went down only after {cut_after[0]}"
            assert seen.types().index("workload.completed") < seen.types().index("model.store_failed")
            [failed] = [e["data"] for e in seen.events if e["type"] == "model.store_failed"]
            # the very first attempt failed: the store was already down when the models service tried
            assert failed["will_retry"] is True and failed["attempt"] == 1
            # refused at the models service's own way to the store (the proxy's port), as from a store that is down
            assert f"port={store_switch.port}" in failed["reason"] and "Connection refused" in failed["reason"], failed

            def pending_after_retries() -> dict | None:
                page = demo.call("GET", "models", "/models", params={"app_id": app_id})
                [model] = page["items"]
                assert model["status"] == "pending", f"stored while the store was down: {model}"
                return model if model["store_attempts"] >= 2 else None

            pending = await wait_until(pending_after_retries, 30, 0.1, "a second failed attempt (the backoff)")
            assert pending["store_error"] and pending["workload_id"] == workload
            assert not store_switch.is_up and "model.stored" not in seen.types()
            detail = await wait_until(lambda: _reached(demo, workload, "completed (model not stored yet)"), 10,
                                      0.1, "the trainer to show the model not stored yet")
            assert detail["model"] is None
            not_ready = demo.http.get(f"{demo.base['models']}/readyz")
            assert not_ready.status_code == 503 and "s3" in not_ready.json()["failed"]
            # nothing lost: every staged artifact is still in the store, waiting for the models service
            completed = next(e["data"] for e in seen.events if e["type"] == "workload.completed")
            staged = _staged(infra.s3_endpoint, [a["prefix"] for a in completed["artifacts"]])
            assert staged and any(key.endswith("/output.bin") for key in staged), staged
        finally:
            store_switch.restore()

        # ---- the store is back: the next attempt stores the model, once
        detail = await wait_until(lambda: _reached(demo, workload, "model stored"), 45, 0.2, "the model stored")
        await wait_until(lambda: seen.count("model.stored"), 10, message="model.stored on the bus")

    assert seen.count("model.store_failed") == 1  # once per outage, not once per attempt
    assert seen.count("model.stored") == 1
    timeline = [item["type"] for item in detail["timeline"]]
    assert timeline[-1] == "model.stored", timeline
    assert timeline.count("model.stored") == 1 and timeline.count("model.store_failed") == 1
    for earlier, later in (("workload.started", "workload.completed"), ("workload.completed", "model.store_failed"),
                           ("model.store_failed", "model.stored")):
        assert timeline.index(earlier) < timeline.index(later), timeline

    versions = demo.call("GET", "models", f"/apps/{app_id}/models")["versions"]
    assert len(versions) == 1, versions
    [model] = versions
    assert model["status"] == "stored" and model["version"] == 1 and model["workload_id"] == workload
    assert model["store_attempts"] >= 2 and model["store_error"] is None
    assert detail["model"]["model_id"] == model["model_id"]
    assert demo.call("GET", "models", "/models", params={"app_id": app_id})["total"] == 1

    stored = demo.call("GET", "models", f"/models/{model['model_id']}")
    files = {item["path"]: item for item in stored["files"]}
    assert any(path.endswith("output.bin") for path in files) and any(path.endswith("metrics.json") for path in files)
    for path, item in files.items():
        body = demo.call("GET", "models", f"/models/{model['model_id']}/download", params={"file": path}).content
        assert len(body) == item["size_bytes"] and hashlib.sha256(body).hexdigest() == item["sha256"], path
        if path.endswith("output.bin"):
            assert body == probe_output(OUTPUT_BYTES)
    demo.verify_model(workload)  # the whole model as a tar: every file's sha256 again


def _reached(demo: Demo, workload: str, status: str) -> dict | None:
    detail = demo.request(workload)
    assert detail["status"] not in {"failed", "cancelled", "rejected"}, detail
    return detail if detail["status"] == status else None


def _staged(endpoint: str, prefixes: list[str]) -> list[str]:
    """Keys under the components' staging prefixes, read from the S3 server directly (not through the proxy)."""
    client = Minio(urlsplit(endpoint).netloc, access_key=S3_ACCESS_KEY, secret_key=S3_SECRET_KEY, secure=False)
    keys = []
    for prefix in prefixes:
        parts = urlsplit(prefix)
        keys += [obj.object_name for obj in client.list_objects(parts.netloc, prefix=parts.path.lstrip("/"),
                                                                recursive=True)]
    return keys
