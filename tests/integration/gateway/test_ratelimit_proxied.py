"""A proxied request counts once against the rate limits: its user, or its address when its credentials fail."""
from __future__ import annotations

import uuid

from services.gateway.main import create_app
from tests.integration.gateway.conftest import gateway_settings
from tests.support.infra import free_port
from tests.support.services import auth, running_service


async def test_bad_credentials_on_proxied_routes_count_against_the_address(fresh):
    settings = gateway_settings(fresh, rate_limits_enabled=True, rate_limit_address="4/minute",
                                redis_prefix=f"rl-{uuid.uuid4().hex[:6]}:",
                                upstream_urls={"trainer": f"http://127.0.0.1:{free_port()}"})
    async with running_service(create_app, settings) as gateway:
        answers = [(await gateway.client.get("/api/trainer/training-requests",
                                             headers={"Authorization": "Bearer junk"})).status_code for _ in range(6)]
        assert answers == [401] * 4 + [429] * 2
        # without credentials at all the door counts the address too
        assert (await gateway.client.get("/api/trainer/training-requests")).status_code == 429


async def test_a_proxied_request_of_a_known_caller_counts_against_the_user(fresh):
    settings = gateway_settings(fresh, rate_limits_enabled=True, rate_limit_user="3/minute",
                                rate_limit_address="3/minute", redis_prefix=f"rl-{uuid.uuid4().hex[:6]}:",
                                upstream_urls={"trainer": f"http://127.0.0.1:{free_port()}"})
    async with running_service(create_app, settings) as gateway:
        kim = auth(gateway.settings, "viewer", "kim")
        answers = [(await gateway.client.get("/api/trainer/training-requests", headers=kim)).status_code
                   for _ in range(4)]
        assert answers == [503] * 3 + [429]  # the trainer is away; kim's own limit holds at the door
        refused = await gateway.client.get("/api/trainer/training-requests", headers=kim)
        assert "user" in refused.json()["detail"] and 1 <= int(refused.headers["retry-after"]) <= 60
        lee = auth(gateway.settings, "viewer", "lee")
        assert (await gateway.client.get("/api/trainer/training-requests", headers=lee)).status_code != 429
