"""Builds the runner (core/runners) and the node inventory source the settings ask for."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.scheduler.core.inventory import Node, load_nodes_file
from services.scheduler.core.runners.base import Runner
from services.scheduler.core.runners.gpu_probe import NvidiaSmi
from services.scheduler.core.runners.local import LocalRunner
from services.scheduler.engine import NodeSource
from services.scheduler.secrets import SecretsClient
from services.scheduler.settings import SchedulerSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
# the component contract names the S3 credentials AVATAR_S3_*; pods read them from the Secret
K8S_S3_SECRET_KEYS = {"AVATAR_S3_ACCESS_KEY": "access-key", "AVATAR_S3_SECRET_KEY": "secret-key"}


@dataclass
class RunnerSetup:
    runner: Runner
    nodes: NodeSource
    measures: frozenset[str]  # what the runner measures: local processes' memory, CPU (and GPUs), pods nothing
    reattach: bool            # do runs outlive the scheduler with their exit status (pods)?
    api_client: Any = None
    http_client: httpx.AsyncClient | None = None

    async def close(self) -> None:
        await self.runner.close()
        if self.api_client is not None:
            await self.api_client.close()
        if self.http_client is not None:
            await self.http_client.aclose()


def file_nodes(path: Path) -> NodeSource:
    async def nodes() -> list[Node]:
        return await asyncio.to_thread(load_nodes_file, path)

    return nodes


def secrets_client(settings: SchedulerSettings) -> tuple[SecretsClient, httpx.AsyncClient]:
    http = httpx.AsyncClient(timeout=settings.scheduler_secrets_timeout_seconds)
    return SecretsClient(http, settings, {"builder": settings.builder_url, "trainer": settings.trainer_url}), http


async def build_runner(settings: SchedulerSettings) -> RunnerSetup:
    resolver, http = secrets_client(settings)
    if settings.scheduler_runner == "local":
        gpus = NvidiaSmi()
        runner = LocalRunner(state_dir=settings.state_dir / "runs", cwd=REPO_ROOT, runner_id=settings.runner_id,
                             stop_grace_seconds=settings.scheduler_stop_grace_seconds,
                             # components never run ahead of the scheduler that runs them (AVATAR_NICE)
                             nice=max(settings.scheduler_local_nice, settings.nice), gpu_probe=gpus,
                             secrets=resolver)
        measures = frozenset({"memory", "cpu", *(["gpu"] if gpus.available() else [])})
        return RunnerSetup(runner, file_nodes(settings.scheduler_nodes_file), measures, False, http_client=http)
    return await _kubernetes(settings, resolver, http)


async def _kubernetes(settings: SchedulerSettings, resolver: SecretsClient, http: httpx.AsyncClient) -> RunnerSetup:
    from kubernetes_asyncio import client, config

    from services.scheduler.core.runners.kubernetes import KubernetesRunner, KubernetesRunnerConfig

    configuration = client.Configuration()
    if settings.scheduler_k8s_kubeconfig is not None:
        await config.load_kube_config(config_file=str(settings.scheduler_k8s_kubeconfig),
                                      client_configuration=configuration, persist_config=False)
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration, persist_config=False)
    api = client.ApiClient(configuration=configuration)
    runner = KubernetesRunner(api, KubernetesRunnerConfig(
        namespace=settings.scheduler_k8s_namespace, s3_secret_name=settings.scheduler_k8s_s3_secret,
        s3_secret_keys=K8S_S3_SECRET_KEYS, delete_grace_seconds=int(settings.scheduler_stop_grace_seconds)),
        secrets=resolver)
    return RunnerSetup(runner, runner.list_nodes, frozenset(), True, api, http)
