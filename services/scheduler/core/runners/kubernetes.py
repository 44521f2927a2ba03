"""KubernetesRunner: one Pod per component run, through kubernetes_asyncio.

The composition root builds the ApiClient (in-cluster or kubeconfig) and passes it in.
- Pod: image `registry:tag`, command, env (list of name/value; S3 credentials through
  valueFrom.secretKeyRef from the configured Secret), `nvidia.com/gpu` limit = GPU count
  (omitted when 0), memory/CPU requests = limits, `nodeName` = the allocated node (the
  scheduler has already placed it), restartPolicy Never, labels avatar.io/workload-id,
  avatar.io/component-id, avatar.io/run (hash) and avatar.io/managed-by; the exact run id
  is in the annotation avatar.io/run-id.
- Secret env vars: their values are resolved at start into a Kubernetes Secret of the run (named like
  its pod, owned by the pod so that it goes when the pod goes, deleted when the run ends); the pod's env
  names them through valueFrom.secretKeyRef, so the pod spec never holds a value.
- CUDA_VISIBLE_DEVICES is NOT set in pods (a user-supplied one is dropped): the NVIDIA
  device plugin chooses the physical GPUs and exposes exactly those to the container.
- wait: read the pod, then watch it (field selector on its name) until phase Succeeded or
  Failed; a watch that times out is simply restarted. A deleted pod ends as STOPPED (if
  we stopped it) or LOST.
- logs: read_namespaced_pod_log(follow=True), retried while the container is still
  starting; if a log sink is configured, start() also pumps the lines into it.
- stop: delete the pod with a short grace period. list_live: pods of this runner that are
  not finished. usage: None (no metrics API here).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Mapping

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from ..inventory import Node, node_from_k8s
from .base import (FAILED, LOST, RUN_ID_ENV, STOPPED, SUCCEEDED, ComponentRun, LogSink, RunHandle,
                   RunnerError, RunOutcome, SecretResolver, Usage, deliver, resolve_secrets, safe_name)

log = logging.getLogger(__name__)
LABEL_WORKLOAD = "avatar.io/workload-id"
LABEL_COMPONENT = "avatar.io/component-id"
LABEL_RUN = "avatar.io/run"
LABEL_MANAGED_BY = "avatar.io/managed-by"
ANNOTATION_RUN_ID = "avatar.io/run-id"
GPU_RESOURCE = "nvidia.com/gpu"
TERMINAL_PHASES = ("Succeeded", "Failed")


@dataclass(frozen=True)
class KubernetesRunnerConfig:
    namespace: str = "avatar"
    managed_by: str = "avatar-scheduler"
    s3_secret_name: str | None = None
    # env var in the pod -> key in the Secret
    s3_secret_keys: Mapping[str, str] = field(default_factory=lambda: {
        "AWS_ACCESS_KEY_ID": "access-key", "AWS_SECRET_ACCESS_KEY": "secret-key"})
    image_pull_secrets: tuple[str, ...] = ()
    service_account: str | None = None
    delete_grace_seconds: int = 5
    watch_timeout_seconds: int = 60
    log_retry_seconds: float = 1.0
    container_name: str = "component"


def label_value(text: str) -> str:
    """Kubernetes label value: <= 63 chars of [A-Za-z0-9_.-], alphanumeric at both ends."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def label_key(text: str) -> str:
    """Kubernetes label key: optional DNS-subdomain prefix + "/" + a name like a label value."""
    prefix, slash, name = text.rpartition("/")
    prefix = re.sub(r"[^a-z0-9.-]+", "-", prefix.lower()).strip(".-")[:253]
    return f"{prefix}/{label_value(name)}" if slash and prefix else label_value(name)


def run_hash(run_id: str) -> str:
    return hashlib.sha1(run_id.encode()).hexdigest()[:12]


def pod_name(run_id: str) -> str:
    return f"avatar-{safe_name(run_id, 43)}-{run_hash(run_id)}"


def secret_name(run_id: str) -> str:
    """The run's own Secret (its secret env vars' values): named like its pod."""
    return pod_name(run_id)


def secret_manifest(run: ComponentRun, values: Mapping[str, str], config: KubernetesRunnerConfig) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret_name(run.run_id), "namespace": config.namespace,
                         "labels": {LABEL_RUN: run_hash(run.run_id), LABEL_MANAGED_BY: config.managed_by},
                         "annotations": {ANNOTATION_RUN_ID: run.run_id}},
            "stringData": {str(k): str(v) for k, v in values.items()}}


def _cpu_quantity(cores: float) -> str:
    return f"{int(round(cores * 1000))}m"


def pod_manifest(run: ComponentRun, config: KubernetesRunnerConfig) -> dict[str, Any]:
    """The Pod body for one component run (pure; what start() creates)."""
    if run.image is None:
        raise RunnerError(f"run {run.run_id}: a Kubernetes run needs an image")
    env = [{"name": str(k), "value": str(v)} for k, v in run.env.items() if k != "CUDA_VISIBLE_DEVICES"]
    env += [{"name": str(name), "valueFrom": {"secretKeyRef": {"name": secret_name(run.run_id), "key": str(name)}}}
            for name in sorted(run.secret_env)]
    env += [{"name": RUN_ID_ENV, "value": run.run_id},
            {"name": "AVATAR_WORKLOAD_ID", "value": run.workload_id},
            {"name": "AVATAR_COMPONENT_ID", "value": run.component_id}]
    if config.s3_secret_name:
        env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": config.s3_secret_name, "key": key}}}
                for name, key in config.s3_secret_keys.items()]
    amounts: dict[str, str] = {}
    if run.memory_bytes:
        amounts["memory"] = str(int(run.memory_bytes))
    if run.cpu:
        amounts["cpu"] = _cpu_quantity(run.cpu)
    limits = dict(amounts)
    if run.gpu_count:
        limits[GPU_RESOURCE] = str(run.gpu_count)
    resources: dict[str, Any] = {}
    if limits:
        resources["limits"] = limits
    if amounts:
        resources["requests"] = dict(amounts)
    container: dict[str, Any] = {"name": config.container_name, "image": str(run.image), "env": env,
                                 "resources": resources}
    if run.command:
        container["command"] = list(run.command)
    labels = {label_key(k): label_value(v) for k, v in run.labels.items()}
    labels.update({LABEL_WORKLOAD: label_value(run.workload_id), LABEL_COMPONENT: label_value(run.component_id),
                   LABEL_RUN: run_hash(run.run_id), LABEL_MANAGED_BY: config.managed_by})
    spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container],
                            "terminationGracePeriodSeconds": config.delete_grace_seconds}
    if run.node_name:
        spec["nodeName"] = run.node_name
    if config.service_account:
        spec["serviceAccountName"] = config.service_account
    if config.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in config.image_pull_secrets]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(run.run_id), "namespace": config.namespace, "labels": labels,
                         "annotations": {ANNOTATION_RUN_ID: run.run_id}},
            "spec": spec}


def outcome_of(pod: Mapping[str, Any]) -> RunOutcome | None:
    """RunOutcome for a finished pod (camelCase dict), None while it is still going."""
    status = pod.get("status") or {}
    phase = status.get("phase")
    if phase not in TERMINAL_PHASES:
        return None
    terminated = {}
    for cs in status.get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated:
            break
    code = terminated.get("exitCode")
    if phase == "Succeeded":
        return RunOutcome(0 if code is None else int(code), SUCCEEDED)
    detail = terminated.get("reason") or status.get("reason") or "Failed"
    return RunOutcome(None if code is None else int(code),
                      f"{FAILED}: {detail}" + (f" (exit code {code})" if code is not None else ""))


class KubernetesRunner:
    def __init__(self, api_client: client.ApiClient, config: KubernetesRunnerConfig | None = None, *,
                 log_sink: LogSink | None = None, namespace: str | None = None,
                 s3_secret: str | None = None, secrets: SecretResolver | None = None) -> None:
        """`namespace` / `s3_secret` are shortcuts overriding those fields of `config`."""
        self._api_client = api_client
        self._core = client.CoreV1Api(api_client)
        config = config or KubernetesRunnerConfig()
        if namespace is not None:
            config = replace(config, namespace=namespace)
        if s3_secret is not None:
            config = replace(config, s3_secret_name=s3_secret)
        self.config = config
        self.log_sink = log_sink
        self.secrets = secrets
        self._stopped: set[str] = set()
        self._pumps: dict[str, asyncio.Task] = {}

    @property
    def namespace(self) -> str:
        return self.config.namespace

    async def _read(self, name: str) -> dict[str, Any] | None:
        try:
            pod = await self._core.read_namespaced_pod(name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return self._api_client.sanitize_for_serialization(pod)

    async def start(self, run: ComponentRun) -> RunHandle:
        body = pod_manifest(run, self.config)
        name = body["metadata"]["name"]
        values = await resolve_secrets(self.secrets, run)
        if values:
            await self._create_secret(run, values)
        try:
            created = await self._core.create_namespaced_pod(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:  # 409: already created by an earlier attempt of this run
                if values:
                    await self._delete_secret(run.run_id)
                raise RunnerError(f"run {run.run_id}: pod creation refused: {exc.status} {exc.reason}") from exc
        else:
            if values:
                await self._own_secret(run.run_id, name, created.metadata.uid)
        handle = RunHandle(run.run_id, name)
        if self.log_sink is not None and run.run_id not in self._pumps:
            self._pumps[run.run_id] = asyncio.create_task(self._pump(handle))
        return handle

    async def _create_secret(self, run: ComponentRun, values: Mapping[str, str]) -> None:
        body = secret_manifest(run, values, self.config)
        try:
            await self._core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise RunnerError(f"run {run.run_id}: secret creation refused: {exc.status} {exc.reason}") from exc
            await self._core.replace_namespaced_secret(secret_name(run.run_id), self.namespace, body)

    async def _own_secret(self, run_id: str, pod: str, uid: str | None) -> None:
        """The pod owns its Secret: Kubernetes deletes the Secret with the pod, whoever deletes the pod."""
        if not uid:
            return
        owner = {"apiVersion": "v1", "kind": "Pod", "name": pod, "uid": uid}
        try:
            await self._core.patch_namespaced_secret(secret_name(run_id), self.namespace,
                                                     {"metadata": {"ownerReferences": [owner]}})
        except ApiException as exc:  # it still goes when the run ends (_finish)
            log.warning("run %s: cannot make pod %s own its secret: %s %s", run_id, pod, exc.status, exc.reason)

    async def _delete_secret(self, run_id: str) -> None:
        try:
            await self._core.delete_namespaced_secret(secret_name(run_id), self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                log.warning("run %s: cannot delete its secret: %s %s", run_id, exc.status, exc.reason)

    async def _pump(self, handle: RunHandle) -> None:
        async for line in self.logs(handle, follow=True):
            await deliver(self.log_sink, handle.run_id, line)

    async def wait(self, handle: RunHandle) -> RunOutcome:
        while True:
            pod = await self._read(handle.ref)
            if pod is None:
                return self._gone(handle)
            outcome = outcome_of(pod)
            if outcome is not None:
                return await self._finish(handle, outcome)
            version = (pod.get("metadata") or {}).get("resourceVersion")
            async with watch.Watch() as w:
                stream = w.stream(self._core.list_namespaced_pod, self.namespace,
                                  field_selector=f"metadata.name={handle.ref}", resource_version=version,
                                  timeout_seconds=self.config.watch_timeout_seconds)
                try:
                    async for event in stream:
                        if event["type"] == "DELETED":
                            return self._gone(handle)
                        outcome = outcome_of(event["raw_object"])
                        if outcome is not None:
                            return await self._finish(handle, outcome)
                except ApiException as exc:
                    if exc.status != 410:  # 410 Gone: resource version too old, re-read
                        raise

    def _gone(self, handle: RunHandle) -> RunOutcome:
        if handle.run_id in self._stopped:
            return RunOutcome(None, STOPPED)
        return RunOutcome(None, f"{LOST}: pod {handle.ref} no longer exists")

    async def _finish(self, handle: RunHandle, outcome: RunOutcome) -> RunOutcome:
        pump = self._pumps.pop(handle.run_id, None)
        if pump is not None:
            await asyncio.gather(pump, return_exceptions=True)
        await self._delete_secret(handle.run_id)  # the values are not needed once the component has ended
        if handle.run_id in self._stopped:
            return RunOutcome(outcome.exit_code, STOPPED)
        return outcome

    async def stop(self, handle: RunHandle, grace_seconds: float | None = None) -> None:
        self._stopped.add(handle.run_id)
        grace = self.config.delete_grace_seconds if grace_seconds is None else int(grace_seconds)
        try:
            await self._core.delete_namespaced_pod(handle.ref, self.namespace, grace_period_seconds=grace)
        except ApiException as exc:
            if exc.status != 404:
                raise

    async def logs(self, handle: RunHandle, *, follow: bool = True) -> AsyncIterator[str]:
        while True:
            response = await self._core.read_namespaced_pod_log(
                handle.ref, self.namespace, follow=follow, _preload_content=False)
            try:
                if response.status == 200:
                    buffer = b""
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        *lines, buffer = buffer.split(b"\n")
                        for raw in lines:
                            yield raw.decode(errors="replace").rstrip("\r")
                    if buffer:
                        yield buffer.decode(errors="replace").rstrip("\r")
                    return
                # 400 while the container is still being created: retry while the pod lives
                pod = await self._read(handle.ref) if response.status != 404 else None
                if pod is None or not follow or outcome_of(pod) is not None:
                    return
            finally:
                response.release()
            await asyncio.sleep(self.config.log_retry_seconds)

    async def list_live(self) -> set[str]:
        pods = await self._core.list_namespaced_pod(
            self.namespace, label_selector=f"{LABEL_MANAGED_BY}={self.config.managed_by}")
        live = set()
        for pod in pods.items:
            phase = (pod.status.phase if pod.status else None) or "Pending"
            annotations = pod.metadata.annotations or {}
            if phase not in TERMINAL_PHASES and ANNOTATION_RUN_ID in annotations:
                live.add(annotations[ANNOTATION_RUN_ID])
        return live

    async def attach(self, run_id: str) -> RunHandle | None:
        name = pod_name(run_id)
        return RunHandle(run_id, name) if await self._read(name) is not None else None

    async def usage(self, handle: RunHandle) -> Usage | None:
        return None

    async def list_nodes(self) -> list[Node]:
        nodes = await self._core.list_node()
        return [node_from_k8s(self._api_client.sanitize_for_serialization(n)) for n in nodes.items]

    async def close(self) -> None:
        for task in self._pumps.values():
            task.cancel()
        await asyncio.gather(*self._pumps.values(), return_exceptions=True)
        self._pumps.clear()
