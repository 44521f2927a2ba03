import asyncio
import json
from dataclasses import replace

import pytest
from kubernetes_asyncio import client

from services.scheduler.core.inventory import GpuPool, NodeStatus
from services.scheduler.core.runners.base import LOST, STOPPED, SUCCEEDED, ComponentRun, ImageRef, RunnerError
from services.scheduler.core.runners.kubernetes import (ANNOTATION_RUN_ID, KubernetesRunner, KubernetesRunnerConfig,
                                                         pod_manifest, pod_name, secret_name)

GB = 10**9


@pytest.fixture
async def api_client(kube):
    configuration = client.Configuration()
    configuration.host = kube.url
    api = client.ApiClient(configuration=configuration)
    yield api
    await api.close()


@pytest.fixture
async def runner(api_client):
    lines = []
    r = KubernetesRunner(api_client, KubernetesRunnerConfig(namespace="avatar", s3_secret_name="avatar-s3",
                                                            watch_timeout_seconds=1, log_retry_seconds=0.05),
                         log_sink=lambda run_id, line: lines.append((run_id, line)))
    r.collected = lines
    yield r
    await r.close()


def component(component_id="CL-REF-002", gpus=(0, 1, 2, 3), run_id=""):
    return ComponentRun(
        workload_id="WL-42", component_id=component_id, name="rl-agent",
        image=ImageRef("registry.avatar.io/rl-agent", "2.0"), command=("python", "-m", "components.rl_agent"),
        env={"NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "all", "AVATAR_OUTPUT": "s3://staging/WL-42/CL-REF-002/"},
        gpu_indices=gpus, node_name="node-a100-1", memory_bytes=128 * GB, cpu=8.5,
        labels={"avatar.io/app-id": "APP-A1B2C3"}, run_id=run_id)


async def wait_for(predicate, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_created_pod_spec(kube, runner):
    handle = await runner.start(component())
    pod = kube.pods[("avatar", handle.ref)]
    spec, container = pod["spec"], pod["spec"]["containers"][0]
    assert spec["nodeName"] == "node-a100-1" and spec["restartPolicy"] == "Never"
    assert container["image"] == "registry.avatar.io/rl-agent:2.0"
    assert container["command"] == ["python", "-m", "components.rl_agent"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "4", "memory": str(128 * GB), "cpu": "8500m"}
    assert container["resources"]["requests"] == {"memory": str(128 * GB), "cpu": "8500m"}
    env = {e["name"]: e for e in container["env"]}
    assert env["NCCL_DEBUG"]["value"] == "INFO" and env["AVATAR_RUN_ID"]["value"] == "WL-42.CL-REF-002"
    assert "CUDA_VISIBLE_DEVICES" not in env  # the device plugin decides inside the pod
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "avatar-s3", "key": "secret-key"}}
    labels = pod["metadata"]["labels"]
    assert labels["avatar.io/workload-id"] == "WL-42" and labels["avatar.io/component-id"] == "CL-REF-002"
    assert labels["avatar.io/app-id"] == "APP-A1B2C3" and labels["avatar.io/managed-by"] == "avatar-scheduler"
    assert pod["metadata"]["annotations"][ANNOTATION_RUN_ID] == "WL-42.CL-REF-002"
    # starting again (re-delivered event) is harmless
    assert await runner.start(component()) == handle


def test_cpu_only_pod_has_no_gpu_limit():
    body = pod_manifest(component(gpus=()), KubernetesRunnerConfig())
    assert "nvidia.com/gpu" not in body["spec"]["containers"][0]["resources"]["limits"]
    assert all(not e["name"].startswith("AWS_") for e in body["spec"]["containers"][0]["env"])


def test_pod_names_are_valid_and_distinct_per_run():
    a, b = pod_name("WL-42.CL-REF-002/attempt:1"), pod_name("WL-42.CL-REF-002/attempt:2")
    assert a != b and len(a) <= 63 and a == a.lower()


async def test_wait_follows_the_pod_to_success_and_streams_logs(kube, runner):
    handle = await runner.start(component())
    waiter = asyncio.create_task(runner.wait(handle))
    tail = []

    async def read_logs():
        async for line in runner.logs(handle):
            tail.append(line)

    reader = asyncio.create_task(read_logs())
    await asyncio.sleep(0.3)  # pending: the log endpoint says "waiting to start", the runner retries
    await kube.set_phase(handle.ref, "Running")
    await kube.append_log(handle.ref, "episode 1 reward 0.5")
    await wait_for(lambda: tail == ["episode 1 reward 0.5"])  # live, before the end
    await kube.append_log(handle.ref, "episode 2 reward 0.7")
    assert not waiter.done()
    await asyncio.sleep(1.3)  # outlive one watch timeout: the runner re-watches
    await kube.set_phase(handle.ref, "Succeeded", exit_code=0)
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.exit_code == 0 and outcome.reason == SUCCEEDED
    await asyncio.wait_for(reader, 5)
    assert tail == ["episode 1 reward 0.5", "episode 2 reward 0.7"]
    assert [line for _, line in runner.collected] == tail  # the sink got them too
    assert sum(1 for kind, _ in kube.requests if kind == "watch") >= 2


async def test_failed_pod_reports_exit_code_and_reason(kube, runner):
    handle = await runner.start(component("CL-REF-003"))
    waiter = asyncio.create_task(runner.wait(handle))
    await asyncio.sleep(0.1)
    await kube.set_phase(handle.ref, "Running")
    await kube.set_phase(handle.ref, "Failed", exit_code=137, reason="OOMKilled")
    outcome = await asyncio.wait_for(waiter, 5)
    assert outcome.exit_code == 137 and outcome.reason == "failed: OOMKilled (exit code 137)"
    assert (await runner.wait(handle)).exit_code == 137  # already finished: read, no watch needed


async def test_stop_deletes_the_pod(kube, runner):
    handle = await runner.start(component())
    await kube.set_phase(handle.ref, "Running")
    waiter = asyncio.create_task(runner.wait(handle))
    await asyncio.sleep(0.1)
    await runner.stop(handle)
    assert ("avatar", handle.ref) not in kube.pods and kube.deleted == [(handle.ref, 5)]
    assert (await asyncio.wait_for(waiter, 5)).reason == STOPPED
    await runner.stop(handle)  # already gone: fine


async def test_a_pod_deleted_by_someone_else_is_lost(kube, runner):
    handle = await runner.start(component())
    waiter = asyncio.create_task(runner.wait(handle))
    await asyncio.sleep(0.1)
    kube.pods.pop(("avatar", handle.ref))
    await kube._emit("DELETED", {"metadata": {"name": handle.ref, "namespace": "avatar"}})
    assert (await asyncio.wait_for(waiter, 5)).reason.startswith(LOST)


async def test_list_live_and_attach_after_a_restart(kube, runner, api_client):
    done = await runner.start(component("CL-REF-001"))
    live = await runner.start(component("CL-REF-002"))
    await kube.set_phase(done.ref, "Succeeded", exit_code=0)
    await kube.set_phase(live.ref, "Running")
    fresh = KubernetesRunner(api_client, namespace="avatar")
    assert await fresh.list_live() == {"WL-42.CL-REF-002"}
    assert await fresh.attach("WL-42.CL-REF-002") == live
    assert (await fresh.wait(await fresh.attach("WL-42.CL-REF-001"))).succeeded
    assert await fresh.attach("WL-42.never") is None
    assert await fresh.usage(live) is None


async def test_nodes_parse_into_the_inventory(kube, runner):
    kube.nodes = [
        {"metadata": {"name": "gpu-1", "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}},
         "spec": {}, "status": {"allocatable": {"nvidia.com/gpu": "8", "memory": "1056589612Ki", "cpu": "63500m"},
                                "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "gpu-2", "labels": {"nvidia.com/gpu.product": "Tesla-V100-SXM2-32GB",
                                                  "nvidia.com/gpu.memory": "32768"}},
         "spec": {"unschedulable": True},
         "status": {"allocatable": {"nvidia.com/gpu": "4", "memory": "503Gi", "cpu": "32"},
                    "conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "cpu-1"}, "spec": {},
         "status": {"allocatable": {"memory": "64Gi", "cpu": "16"}, "conditions": [{"type": "Ready", "status": "False"}]}},
    ]
    nodes = {n.name: n for n in await runner.list_nodes()}
    assert nodes["gpu-1"].status is NodeStatus.ACTIVE and nodes["gpu-1"].gpus == {"A100": GpuPool(8, 80 * GB)}
    assert nodes["gpu-1"].memory_bytes == 1056589612 * 1024 and nodes["gpu-1"].cpu == 63.5
    assert nodes["gpu-2"].status is NodeStatus.DRAIN and nodes["gpu-2"].gpus == {"V100": GpuPool(4, 32768 * 2**20)}
    assert nodes["cpu-1"].status is NodeStatus.DOWN and nodes["cpu-1"].gpus == {}


async def test_secret_env_vars_go_into_a_secret_of_the_run_never_into_the_pod(kube, api_client):
    asked = []

    async def resolve(run):
        asked.append(dict(run.secret_env))
        return {"HF_TOKEN": "hf-value-1", "DB_PASSWORD": "pw-value-2"}

    runner = KubernetesRunner(api_client, KubernetesRunnerConfig(namespace="avatar", watch_timeout_seconds=1),
                              secrets=resolve)
    try:
        run = replace(component(), secret_env={"HF_TOKEN": {"ref": 1}, "DB_PASSWORD": {"ref": 2}})
        handle = await runner.start(run)
        assert asked == [{"HF_TOKEN": {"ref": 1}, "DB_PASSWORD": {"ref": 2}}]  # resolved once, at start
        pod = kube.pods[("avatar", handle.ref)]
        assert "hf-value-1" not in json.dumps(pod) and "pw-value-2" not in json.dumps(pod)
        env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        secret = kube.secrets[("avatar", secret_name(run.run_id))]
        assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": secret["metadata"]["name"], "key": "HF_TOKEN"}}}
        assert secret["stringData"] == {"HF_TOKEN": "hf-value-1", "DB_PASSWORD": "pw-value-2"}
        # the pod owns it (Kubernetes deletes it with the pod), and it goes when the run ends
        assert secret["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "Pod", "name": handle.ref, "uid": pod["metadata"]["uid"]}]
        await kube.set_phase(handle.ref, "Succeeded", exit_code=0)
        assert (await runner.wait(handle)).reason == SUCCEEDED
        assert ("avatar", secret_name(run.run_id)) not in kube.secrets
    finally:
        await runner.close()


async def test_a_run_with_secrets_does_not_start_without_their_values(kube, api_client):
    async def resolve(run):
        return {}

    for resolver in (None, resolve):
        runner = KubernetesRunner(api_client, KubernetesRunnerConfig(namespace="avatar"), secrets=resolver)
        with pytest.raises(RunnerError, match="HF_TOKEN|cannot resolve"):
            await runner.start(replace(component(), secret_env={"HF_TOKEN": {"ref": 1}}))
        await runner.close()
    assert kube.pods == {} and kube.secrets == {}
