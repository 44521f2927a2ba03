"""Secret env vars across the six running services (issue 22, Secrets): an App-level secret (builder) and a
request-level one (trainer) reach the component's process env, and their values appear nowhere else: in no
answer of any GET route of any service (as viewer, researcher and admin), no event on the broker, no row of
the database (models' records included), no log file of the services or of the component runs."""
from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import re
import secrets
import subprocess
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from services.kit.demo import Demo
from services.kit.stack import SERVICES
from services.scheduler.settings import SchedulerSettings
from tests.e2e.conftest import bearer
from tests.support.broker import tapped

SMALL = {"gpu_type": "V100", "gpu_count": 1, "memory": "8GB", "max_runtime": "10m"}  # approved automatically


@pytest.fixture(scope="module")
def demo(base, settings):
    return Demo(base, settings, timeout=180, episodes=5)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def texts(response: httpx.Response) -> list[str]:
    """What a response says: its body, and each member of an archive it carries."""
    found = [response.content.decode(errors="replace")]
    with_archive = response.content[:2] == b"\x1f\x8b"
    if with_archive:
        with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as archive:
            for member in archive.getmembers():
                if member.isfile():
                    found.append(archive.extractfile(member).read().decode(errors="replace"))
    return found


def every_get(base: dict[str, str], headers: dict[str, str], ids: dict[str, str]) -> list[tuple[str, httpx.Response]]:
    """GET every route of every service's OpenAPI document, path parameters filled from `ids`."""
    answered = []
    with httpx.Client(timeout=30) as client:
        for service, url in base.items():
            document = client.get(f"{url}/openapi.json").json()
            for path, operations in document["paths"].items():
                if "get" not in operations:
                    continue
                filled = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), ids["*"]), path)
                answered.append((f"{service} GET {filled}", client.get(url + filled, headers=headers)))
    return answered


def test_secret_values_reach_only_the_component(demo, base, settings, stack):
    app_secret, request_secret = "app-" + secrets.token_urlsafe(24), "req-" + secrets.token_urlsafe(24)
    plain = "plain-" + secrets.token_urlsafe(8)  # the control: a plain value, which every search finds
    values = (app_secret, request_secret)
    started = time.time()
    bodies: list[bytes] = []
    components = demo.library_components()

    async def scenario() -> tuple[str, str, dict]:
        async with tapped(stack.environment()["AVATAR_RABBITMQ_URL"], lambda m: bodies.append(m.body)):
            app_id = await asyncio.to_thread(
                demo.build_app, "Keeps-A-Secret",
                [("probe-task", [("probe", {"params": {"env_sha256": {"PROBE_API_KEY": sha(app_secret),
                                                                      "RUN_TOKEN": sha(request_secret)}}})])],
                components, secret_env={"PROBE_API_KEY": app_secret})
            await asyncio.to_thread(demo.ready_in_trainer, app_id)
            workload = demo.call("POST", "trainer", "/training-requests", expect=202, json={
                "app_id": app_id, "resources": SMALL, "name": "secret run", "training_config": {"episodes": 5},
                "env_vars": {"RUN_TOKEN": request_secret, "PLAIN_SETTING": plain}})["workload_id"]
            await asyncio.to_thread(demo.wait_status, workload, {"model stored"}, f"{workload} to finish")
            await asyncio.sleep(1.0)  # the last events reach the tap
        model = demo.call("GET", "models", f"/apps/{app_id}/models")
        return app_id, workload, model

    app_id, workload, versions = asyncio.run(scenario())

    # the component DID get both values in its env (the probe compares their digests)
    model_id = versions["versions"][0]["model_id"]
    log = demo.call("GET", "scheduler", f"/workloads/{workload}/logs",
                    params={"component": components["probe"]["component_id"]}).text
    assert "probe: env PROBE_API_KEY has the expected value" in log, log
    assert "probe: env RUN_TOKEN has the expected value" in log, log

    # shown as set, never the value
    app = demo.call("GET", "builder", f"/apps/{app_id}")
    assert app["secret_env_vars"] == [{"name": "PROBE_API_KEY", "secret": True, "set": True, "version": 1}]

    # no GET of any service, whoever asks
    task_id = demo.call("GET", "builder", f"/apps/{app_id}/tasks")[0]["task_id"]
    ids = {"app_id": app_id, "workload_id": workload, "model_id": model_id, "task_id": task_id,
           "component_id": components["probe"]["component_id"], "version": app["latest_spec_version"],
           "component": components["probe"]["component_id"], "*": workload}
    for role in ("viewer", "researcher", "admin"):
        answered = every_get(base, bearer(settings, f"{role}-prober", role), ids)
        assert len({name.split()[0] for name, _ in answered}) == len(SERVICES)
        assert sum(r.status_code == 200 for _, r in answered) > 20
        assert any(plain in text for _, r in answered for text in texts(r))
        for name, response in answered:
            for text in texts(response):
                for value in values:
                    assert value not in text, f"{name} as {role} answered a secret's value"

    # no event body on the broker
    assert any(plain.encode() in body for body in bodies)
    for body in bodies:
        for value in values:
            assert value.encode() not in body

    # no row of any service's tables (models' records, approval's requests, the spec snapshots ...):
    # the whole database as text, with the values only as Fernet tokens
    dump = subprocess.run(["pg_dump", "--data-only", stack.environment()["AVATAR_POSTGRES_URL"]],
                          capture_output=True, check=True).stdout
    assert b"secret_values" in dump and plain.encode() in dump
    for value in values:
        assert value.encode() not in dump

    # no log file: the services' logs and every component run's output.log
    env = stack.environment()
    state_dir = SchedulerSettings(postgres_url=env["AVATAR_POSTGRES_URL"],
                                  redis_prefix=env.get("AVATAR_REDIS_PREFIX", "avatar:")).state_dir
    files = [p for p in [*stack.logs.rglob("*"), *Path(state_dir).rglob("*")] if p.is_file()]
    run_logs = [p for p in files if p.name == "output.log" and p.stat().st_mtime >= started]
    assert run_logs and any(p.name.endswith(".log") for p in stack.logs.iterdir())
    for path in files:
        content = path.read_bytes()
        if path.suffix == ".gz":
            content = gzip.decompress(content)
        for value in values:
            assert value.encode() not in content, f"{path} holds a secret's value"
