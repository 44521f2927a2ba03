"""The scheduler's side of secret env vars: the runner's SecretResolver, asking the service that stores a
secret (builder: App env vars, trainer: request env vars) for its value as a component starts.

It calls `POST /internal/secrets/resolve` (services/kit/secrets.py) with the scheduler's own service
token, names the run it resolves for (the storing service logs it), and keeps nothing: the values go
straight into the component's process env or its Kubernetes Secret.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping

import httpx

from contracts.spec import SecretRef
from services.kit.auth import mint_service_token
from services.kit.settings import Settings
from services.kit.telemetry import inject_headers
from services.scheduler.core.runners.base import ComponentRun, RunnerError

IDENTITY = "scheduler"


class SecretsClient:
    def __init__(self, client: httpx.AsyncClient, settings: Settings, urls: Mapping[str, str]) -> None:
        self._client = client
        self._settings = settings
        self._urls = dict(urls)

    def _token(self) -> str:
        """AVATAR_SERVICE_TOKEN (issued by the identity provider); with HS256 tokens the scheduler holds
        the signing key anyway and mints a short-lived one itself."""
        if self._settings.service_token:
            return self._settings.service_token
        if self._settings.jwt_public_key is None:
            return mint_service_token(self._settings, IDENTITY, ttl_seconds=300)
        raise RunnerError("AVATAR_SERVICE_TOKEN is not set: the scheduler cannot resolve secret env vars")

    async def __call__(self, run: ComponentRun) -> dict[str, str]:
        by_service: dict[str, list[dict]] = defaultdict(list)
        for name, ref in run.secret_env.items():
            ref = ref if isinstance(ref, SecretRef) else SecretRef.model_validate(ref)
            by_service[ref.service].append({"name": name, "owner": ref.owner, "version": ref.version})
        headers = inject_headers({"Authorization": f"Bearer {self._token()}"})
        values: dict[str, str] = {}
        for service, items in sorted(by_service.items()):
            url = self._urls.get(service)
            if url is None:
                raise RunnerError(f"run {run.run_id}: no address for the {service} service's secrets")
            try:
                response = await self._client.post(f"{url.rstrip('/')}/internal/secrets/resolve", headers=headers,
                                                   json={"run": run.run_id, "secrets": items})
            except httpx.HTTPError as exc:
                raise RunnerError(f"run {run.run_id}: the {service} service did not answer for its secrets "
                                  f"({type(exc).__name__})") from None
            if response.status_code != 200:
                # the body names what is missing or refused; it never holds a value
                raise RunnerError(f"run {run.run_id}: the {service} service refused its secrets "
                                  f"(HTTP {response.status_code}: {response.text[:200]})")
            values.update({item["name"]: item["value"] for item in response.json()["values"]})
        return values
