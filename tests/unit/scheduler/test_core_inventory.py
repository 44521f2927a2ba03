from decimal import Decimal

import pytest

from services.scheduler.core.inventory import (DEFAULT_NODES_FILE, GpuPool, Node, NodeStatus,
                                               gpu_type_from_product, load_nodes_file, node_from_k8s,
                                               nodes_from_config, parse_quantity)

GB = 10**9


def k8s_node(name="gpu-1", *, gpus="8", product="NVIDIA-A100-SXM4-80GB", memory="503Gi", cpu="63500m",
             ready="True", unschedulable=None, extra_labels=None):
    labels = {"kubernetes.io/hostname": name}
    if product:
        labels["nvidia.com/gpu.product"] = product
    labels.update(extra_labels or {})
    allocatable = {"cpu": cpu, "memory": memory}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    spec = {} if unschedulable is None else {"unschedulable": unschedulable}
    return {"metadata": {"name": name, "labels": labels}, "spec": spec,
            "status": {"allocatable": allocatable, "conditions": [
                {"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]}}


def test_default_inventory_matches_the_spec_example():
    nodes = {n.name: n for n in load_nodes_file(DEFAULT_NODES_FILE)}
    assert set(nodes) == {"node-a100-1", "node-a100-2", "node-v100-1"}
    a1 = nodes["node-a100-1"]
    assert a1.gpus == {"A100": GpuPool(8, 80 * GB)}
    assert a1.memory_bytes == 1024 * GB and a1.cpu == 64 and a1.status is NodeStatus.ACTIVE
    assert nodes["node-a100-2"].gpus["A100"].memory_per_gpu_bytes == 40 * GB
    assert nodes["node-v100-1"].gpus == {"V100": GpuPool(8, 32 * GB)}
    assert nodes["node-v100-1"].memory_bytes == 512 * GB and nodes["node-v100-1"].cpu == 32


def test_json_inventory_and_gpu_indices_follow_pool_order(tmp_path):
    path = tmp_path / "nodes.json"
    path.write_text('{"nodes": [{"name": "mix", "status": "Drain", "cpu": 8, "memory_bytes": 1000,'
                    ' "gpus": {"A100": {"count": 2, "memory": "80GB"}, "T4": {"count": 3, "memory_per_gpu_bytes": 16}}}]}')
    [node] = load_nodes_file(path)
    assert node.status is NodeStatus.DRAIN and node.memory_bytes == 1000
    assert node.gpu_indices() == {"A100": (0, 1), "T4": (2, 3, 4)}
    assert node.gpu_total == 5


def test_duplicate_and_invalid_nodes_are_refused():
    with pytest.raises(ValueError, match="duplicate"):
        nodes_from_config({"nodes": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ValueError):
        nodes_from_config({"nodes": [{"name": "a", "gpus": {"any": 2}}]})
    with pytest.raises(ValueError):
        nodes_from_config({"nodes": [{"name": "a", "status": "Sleeping"}]})
    with pytest.raises(ValueError):
        Node("")


@pytest.mark.parametrize("text,value", [
    ("503Gi", Decimal(503 * 2**30)), ("64", Decimal(64)), ("63500m", Decimal("63.5")),
    ("128974848Ki", Decimal(128974848 * 1024)), ("1e3", Decimal(1000)), ("2M", Decimal(2 * 10**6)),
    ("0.5", Decimal("0.5")), (8, Decimal(8)),
])
def test_kubernetes_quantities(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "12Qi", "abc", "1.2.3G"])
def test_bad_quantities_raise(bad):
    with pytest.raises(ValueError):
        parse_quantity(bad)


@pytest.mark.parametrize("product,gpu_type", [
    ("NVIDIA-A100-SXM4-80GB", "A100"), ("Tesla-V100-SXM2-32GB", "V100"), ("NVIDIA-H100-80GB-HBM3", "H100"),
    ("NVIDIA-GeForce-RTX-4090", "RTX4090"), ("Tesla-T4", "T4"), ("NVIDIA-L40S", "L40S"),
])
def test_gpu_product_label_to_type(product, gpu_type):
    assert gpu_type_from_product(product) == gpu_type


def test_ready_schedulable_gpu_node():
    node = node_from_k8s(k8s_node())
    assert node.name == "gpu-1" and node.status is NodeStatus.ACTIVE
    assert node.gpus == {"A100": GpuPool(8, 80 * GB)}  # memory from the product name
    assert node.memory_bytes == 503 * 2**30 and node.cpu == 63.5


def test_gpu_memory_label_is_mib_and_wins_over_the_name():
    node = node_from_k8s(k8s_node(extra_labels={"nvidia.com/gpu.memory": "40960"}))
    assert node.gpus["A100"].memory_per_gpu_bytes == 40960 * 2**20


def test_cordoned_node_is_drain_and_not_ready_is_down():
    assert node_from_k8s(k8s_node(unschedulable=True)).status is NodeStatus.DRAIN
    assert node_from_k8s(k8s_node(ready="False")).status is NodeStatus.DOWN
    assert node_from_k8s(k8s_node(ready="Unknown", unschedulable=True)).status is NodeStatus.DOWN


def test_cpu_only_node_and_type_override_label():
    assert node_from_k8s(k8s_node(gpus=None, product=None)).gpus == {}
    assert node_from_k8s(k8s_node(gpus="0")).gpus == {}
    node = node_from_k8s(k8s_node(extra_labels={"avatar.io/gpu-type": "A100-80"}))
    assert list(node.gpus) == ["A100-80"]
