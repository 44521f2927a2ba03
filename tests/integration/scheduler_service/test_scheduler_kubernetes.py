"""The service in Kubernetes mode, against an in-test API server (the test plays kubelet)."""
from __future__ import annotations

import json

import pytest

from contracts.events import WorkloadApproved
from services.scheduler.main import create_app
from tests.integration.scheduler.sched_fake_kube import FakeKubeApi
from tests.integration.scheduler_service.support import component, workload
from tests.support.infra import wait_until
from tests.support.services import running_service


def k8s_node(name: str, product: str, gpus: int) -> dict:
    return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
            "spec": {},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "16", "memory": "128Gi"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.fixture
async def kube():
    api = FakeKubeApi()
    await api.start()
    api.nodes = [k8s_node("gpu-a", "NVIDIA-A100-SXM4-80GB", 4), k8s_node("gpu-b", "Tesla-V100-SXM2-32GB", 2)]
    yield api
    await api.stop()


@pytest.fixture
def k8s_settings(scheduler_settings, kube, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": kube.url}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "users": [{"name": "test", "user": {}}]}))
    return scheduler_settings(scheduler_runner="kubernetes", scheduler_k8s_kubeconfig=kubeconfig,
                              scheduler_k8s_namespace="avatar", scheduler_k8s_s3_secret="avatar-s3")


async def pod_of(kube: FakeKubeApi, component_id: str) -> dict:
    def find():
        return next((p for p in kube.pods.values()
                     if p["metadata"]["labels"].get("avatar.io/component-id") == component_id), None)

    return await wait_until(find, message=f"the pod of {component_id}")


async def finish(kube: FakeKubeApi, pod: dict, exit_code: int, *lines: str) -> None:
    name = pod["metadata"]["name"]
    await kube.set_phase(name, "Running")
    for line in lines:
        await kube.append_log(name, line)
    await kube.set_phase(name, "Succeeded" if exit_code == 0 else "Failed", exit_code=exit_code,
                         reason="Completed" if exit_code == 0 else "Error")


async def test_components_run_as_pods_bound_to_their_node_in_dag_order(k8s_settings, kube, publish, tap):
    wl = workload("WL-K8S", component("CL-SIM", gpu_count=1, memory="8GB"),
                  component("CL-AGENT", gpu_type="V100", gpu_count=2, memory="16GB"),
                  edges=[("CL-SIM", "CL-AGENT")], env_vars={"NCCL_DEBUG": "INFO", "CUDA_VISIBLE_DEVICES": "all"})
    async with running_service(create_app, k8s_settings) as scheduler:
        nodes = (await scheduler.client.get("/nodes", headers=scheduler.headers("viewer"))).json()["items"]
        assert {n["name"]: list(n["gpus"]) for n in nodes} == {"gpu-a": ["A100"], "gpu-b": ["V100"]}
        await publish("workload.approved", WorkloadApproved(workload_id="WL-K8S", auto=True, workload=wl))

        sim = await pod_of(kube, "CL-SIM")
        container = sim["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert sim["spec"]["nodeName"] == "gpu-a"
        assert container["image"] == "registry.avatar.io/probe:1.0" and "command" not in container
        assert container["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": str(8 * 10**9), "cpu": "1000m"}
        assert env["AVATAR_OUTPUT_PREFIX"]["value"] == "s3://avatar-staging/WL-K8S/TASK-001/CL-SIM/"
        assert env["AVATAR_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "avatar-s3", "key": "access-key"}
        assert "CUDA_VISIBLE_DEVICES" not in env and env["NCCL_DEBUG"]["value"] == "INFO"
        assert not any(p["metadata"]["labels"].get("avatar.io/component-id") == "CL-AGENT" for p in kube.pods.values())
        await finish(kube, sim, 0, "simulating", "done")

        agent = await pod_of(kube, "CL-AGENT")
        env = {e["name"]: e["value"] for e in agent["spec"]["containers"][0]["env"] if "value" in e}
        assert agent["spec"]["nodeName"] == "gpu-b"
        assert json.loads(env["AVATAR_INPUT_PREFIXES"]) == ["s3://avatar-staging/WL-K8S/TASK-001/CL-SIM/"]
        await finish(kube, agent, 3, "training", "error: reward diverged")

        failed = await tap.wait_for("workload.failed", "WL-K8S")
        assert failed.data.stage == "run" and failed.data.component_id == "CL-AGENT"
        assert "exit code 3" in failed.data.reason and failed.data.reason.endswith("error: reward diverged")
        await wait_until(lambda: not kube.pods, message="finished pods deleted")
        log = await scheduler.client.get("/workloads/WL-K8S/logs", params={"component": "CL-SIM"},
                                         headers=scheduler.headers("viewer"))
        assert log.text == "simulating\ndone\n"
        resources = (await scheduler.client.get("/resources", headers=scheduler.headers("viewer"))).json()
        assert resources["memory"]["used"] is None and resources["cpu"]["used"] is None  # nothing measures pods
        assert await scheduler.app.state.scheduler.allocator.allocations() == []


async def test_a_restarted_scheduler_re_attaches_to_running_pods(k8s_settings, kube, publish, tap):
    wl = workload("WL-POD", component("CL-LONG", gpu_count=2))
    async with running_service(create_app, k8s_settings) as first:
        await wait_until(lambda: first.app.state.scheduler.leadership.leading, message="leadership")
        await publish("workload.approved", WorkloadApproved(workload_id="WL-POD", auto=True, workload=wl))
        pod = await pod_of(kube, "CL-LONG")
        await kube.set_phase(pod["metadata"]["name"], "Running")
        await kube.append_log(pod["metadata"]["name"], "epoch 1")
    assert pod["metadata"]["name"] in {name for _, name in kube.pods}  # a pod outlives the scheduler
    async with running_service(create_app, k8s_settings) as second:
        await wait_until(lambda: second.app.state.scheduler.leadership.leading, message="leadership")
        allocations = await wait_until(second.app.state.scheduler.allocator.allocations, message="restored")
        assert [(a.node, a.gpu_indices) for a in allocations] == [("gpu-a", (0, 1))]
        await finish(kube, pod, 0, "epoch 2")
        completed = await tap.wait_for("workload.completed", "WL-POD")
        assert completed.data.artifacts[0].component_id == "CL-LONG"
    assert tap.emitted("WL-POD") == ["workload.queued", "workload.started", "workload.completed"]
    assert len([p for p in kube.events if p[1] == "ADDED"]) == 1  # never started twice
