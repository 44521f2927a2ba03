"""Every service starts as its own process (python -m services.<name>) and reports ready."""
import pytest

from services.kit.stack import SERVICES
from tests.e2e.conftest import get


@pytest.mark.parametrize("service", SERVICES)
def test_service_is_ready_with_docs_and_metrics(base, service):
    status, body = get(f"{base[service]}/readyz")
    assert status == 200 and body["status"] == "ready"
    assert {"postgres", "rabbitmq"} <= set(body["checked"])
    assert get(f"{base[service]}/healthz") == (200, {"status": "ok", "service": service})
    status, openapi = get(f"{base[service]}/openapi.json")
    assert status == 200 and openapi["info"]["title"] == f"AVATAR OnE {service}"
    status, metrics = get(f"{base[service]}/metrics")
    assert status == 200 and "avatar_outbox_pending" in metrics
    # uvloop everywhere but in the scheduler, whose local runner spawns components (services/scheduler/settings.py)
    loop = "asyncio" if service == "scheduler" else "uvloop"
    assert (f'avatar_runtime_info{{event_loop="{loop}",http_parser="httptools",service="{service}"}} 1.0'
            in metrics), [line for line in metrics.splitlines() if "runtime_info" in line]
