"""Every service starts as its own process (python -m services.<name>) and reports ready."""
import json
import urllib.request

import pytest

from services.kit.stack import SERVICES, Stack
from tests.support.infra import free_port


@pytest.fixture(scope="module")
def stack(infra, tmp_path_factory):
    ports = {name: free_port() for name in SERVICES}
    stack = Stack(run_dir=tmp_path_factory.mktemp("stack"), s3_port=int(infra.s3_endpoint.rsplit(":", 1)[1]),
                  ports=ports, database=infra.database, vhost=infra.vhost,
                  extra_env={k: v for k, v in infra.environ().items() if k.startswith("AVATAR_S3") or k == "AVATAR_REDIS_PREFIX"})
    try:
        stack.up(timeout=90)
        yield stack
    finally:
        stack.down()


def get(url: str) -> tuple[int, dict | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            return response.status, (json.loads(body) if body.startswith("{") else body)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_ready_with_docs_and_metrics(stack, service):
    base = f"http://127.0.0.1:{stack.ports[service]}"
    status, body = get(f"{base}/readyz")
    assert status == 200 and body["status"] == "ready"
    assert {"postgres", "rabbitmq"} <= set(body["checked"])
    assert get(f"{base}/healthz") == (200, {"status": "ok", "service": service})
    status, openapi = get(f"{base}/openapi.json")
    assert status == 200 and openapi["info"]["title"] == f"AVATAR OnE {service}"
    status, metrics = get(f"{base}/metrics")
    assert status == 200 and "avatar_outbox_pending" in metrics
