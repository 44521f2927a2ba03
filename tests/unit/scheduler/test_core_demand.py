import pytest

from contracts.resources import Resources
from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree, best_fit, candidates, fits
from services.scheduler.core.inventory import NodeStatus

GB = 10**9


def node(name, gpus=None, mem=1024 * GB, cpu=64_000, status=NodeStatus.ACTIVE):
    return NodeFree(name, status, {t: GpuFree(free, size * GB) for t, (free, size) in (gpus or {}).items()}, mem, cpu)


def test_gpus_must_come_from_one_node():
    nodes = [node("n1", {"A100": (2, 80)}), node("n2", {"A100": (2, 80)})]
    demand = ComponentDemand("A100", 4)
    assert not any(fits(n, demand) for n in nodes)
    assert best_fit(nodes, demand) is None
    assert best_fit(nodes, ComponentDemand("A100", 2)).node == "n1"


def test_best_fit_least_leftover_then_name():
    nodes = [node("b", {"A100": (3, 80)}), node("a", {"A100": (3, 80)}), node("c", {"A100": (8, 80)}),
             node("d", {"A100": (1, 80)})]
    assert best_fit(nodes, ComponentDemand("A100", 2)).node == "a"
    assert [p.node for p in candidates(nodes, ComponentDemand("A100", 2))] == ["a", "b", "c"]


def test_named_type_only_matches_itself():
    nodes = [node("v", {"V100": (8, 32)})]
    assert best_fit(nodes, ComponentDemand("A100", 1)) is None
    assert best_fit(nodes, ComponentDemand("V100", 1)).gpu_type == "V100"


def test_any_type_with_minimum_memory():
    nodes = [node("v100", {"V100": (8, 32)}), node("a40", {"A100": (8, 40)}), node("a80", {"A100": (6, 80)})]
    demand = ComponentDemand("any", 2, min_gpu_memory_bytes=40 * GB)
    placement = best_fit(nodes, demand)
    assert (placement.node, placement.gpu_type) == ("a80", "A100")  # least leftover among 40GB+ GPUs
    assert best_fit(nodes, ComponentDemand("any", 2, min_gpu_memory_bytes=81 * GB)) is None
    assert best_fit(nodes, ComponentDemand("any", 8, min_gpu_memory_bytes=16 * GB)).node == "a40"


def test_memory_and_cpu_must_fit_on_the_same_node():
    nodes = [node("small", {"A100": (8, 80)}, mem=100 * GB), node("big", {"A100": (8, 80)}, cpu=2_000)]
    assert best_fit(nodes, ComponentDemand("A100", 1, memory_bytes=200 * GB, cpu=4)) is None
    assert best_fit(nodes, ComponentDemand("A100", 1, memory_bytes=200 * GB, cpu=1)).node == "big"


def test_drained_and_down_nodes_take_no_new_work():
    nodes = [node("d", {"A100": (8, 80)}, status=NodeStatus.DRAIN),
             node("x", {"A100": (8, 80)}, status=NodeStatus.DOWN)]
    assert best_fit(nodes, ComponentDemand("A100", 1)) is None
    assert fits(nodes[0], ComponentDemand("A100", 1))  # capacity-wise it would


def test_cpu_only_work_prefers_nodes_with_fewest_free_gpus():
    nodes = [node("gpu", {"A100": (8, 80)}), node("busy", {"A100": (1, 80)}), node("cpu", {})]
    assert best_fit(nodes, ComponentDemand(gpu_count=0, memory_bytes=GB, cpu=1)).node == "cpu"


def test_from_spec_resources():
    demand = ComponentDemand.from_resources(Resources(gpu_type="A100", gpu_count=4, memory="128GB"), cpu=8)
    assert demand == ComponentDemand("A100", 4, 0, 128 * GB, 8.0)
    any_demand = ComponentDemand.from_resources({"gpu_type": "any", "gpu_count": 1, "memory": "16GB",
                                                 "min_gpu_memory": "24GB"})
    assert any_demand.is_any_type and any_demand.min_gpu_memory_bytes == 24 * GB


def test_take_and_give_are_inverse():
    n = node("n", {"A100": (8, 80)})
    d = ComponentDemand("A100", 3, memory_bytes=10 * GB, cpu=2.5)
    taken = n.take(d, "A100")
    assert taken.gpus["A100"].free == 5 and taken.cpu_millis == 61_500
    assert taken.give(d, "A100") == n


def test_negative_demands_are_refused():
    with pytest.raises(ValueError):
        ComponentDemand("A100", -1)
