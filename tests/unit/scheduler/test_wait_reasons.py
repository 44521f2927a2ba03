"""services/scheduler/wait.py: why a waiting workload waits and when it may start (pure, no servers)."""
from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree
from services.scheduler.core.inventory import NodeStatus
from services.scheduler.core.policy import RunningAllocation
from services.scheduler.wait import Waiting, explain

GB = 10**9
NOW = 1_000_000.0


def node(name, free, total=8, status=NodeStatus.ACTIVE, gpu="A100", mem=512 * GB, cpu=64_000):
    return NodeFree(name, status, {gpu: GpuFree(free, 80 * GB)}, mem, cpu), \
        NodeFree(name, status, {gpu: GpuFree(total, 80 * GB)}, 1024 * GB, 128_000)


def cluster(*nodes):
    return [n[0] for n in nodes], [n[1] for n in nodes]


def busy(node_name, gpus, ends_in, gpu="A100"):
    return RunningAllocation(node_name, gpu, gpus, 0, 0, None if ends_in is None else NOW + ends_in)


def wait(workload_id, gpus, runtime=3600, gpu="A100", memory=0, cpu=0.0):
    return Waiting(workload_id, ComponentDemand(gpu, gpus, memory_bytes=memory, cpu=cpu), runtime)


def test_the_seed_example_needs_four_a100_on_one_node_with_two_free():
    free, capacity = cluster(node("n1", 2), node("n2", 1))
    [reason] = explain([wait("W1", 4)], free, capacity, [busy("n1", 6, 600), busy("n2", 7, 1800)], NOW)
    assert reason.code == "gpus"
    assert reason.text == "한 노드에 A100 4개 필요 · 여유 2개"
    assert reason.figures == {"gpu_type": "A100", "gpu_count": 4, "gpus_free": 2}
    assert reason.estimated_start == NOW + 600  # n1's work ends first and leaves 8 free


def test_a_workload_that_fits_now_is_starting_and_the_next_one_queues_behind_it():
    free, capacity = cluster(node("n1", 4))
    first, second = explain([wait("W1", 4, runtime=100), wait("W2", 2)], free, capacity, [busy("n1", 4, 50)], NOW)
    assert (first.code, first.estimated_start) == ("starting", NOW)
    # W2 would fit now (4 free), but W1 takes them first; n1's other 4 GPUs free at +50
    assert (second.code, second.figures, second.estimated_start) == ("behind", {"ahead": 1}, NOW + 50)
    assert second.text == "앞선 대기 작업 1건이 먼저 자원을 씁니다"


def test_strict_order_never_estimates_a_later_workload_before_an_earlier_one():
    free, capacity = cluster(node("n1", 0))
    reasons = explain([wait("BIG", 8, runtime=100), wait("SMALL", 1, runtime=10)], free, capacity,
                      [busy("n1", 8, 30)], NOW)
    assert [r.estimated_start for r in reasons] == [NOW + 30, NOW + 130]


def test_a_request_no_node_can_hold_is_unschedulable_and_holds_nobody_up():
    free, capacity = cluster(node("n1", 8))
    huge, small = explain([wait("HUGE", 16), wait("SMALL", 2)], free, capacity, [], NOW)
    assert (huge.code, huge.estimated_start) == ("unschedulable", None)
    assert huge.text == "A100 16개를 한 번에 가진 활성 노드가 없습니다"
    assert (small.code, small.estimated_start) == ("starting", NOW)


def test_a_request_only_a_drained_node_could_hold_says_so():
    free, capacity = cluster(node("n1", 8, gpu="V100"), node("n2", 8, status=NodeStatus.DRAIN))
    [reason] = explain([wait("W", 4)], free, capacity, [], NOW)
    assert reason.code == "nodes_unavailable" and reason.figures == {"nodes": ["n2"]}
    assert reason.estimated_start is None


def test_work_without_an_expected_end_leaves_the_estimate_unknown_for_everyone_behind():
    free, capacity = cluster(node("n1", 0))
    reasons = explain([wait("W1", 2), wait("W2", 1)], free, capacity, [busy("n1", 8, None)], NOW)
    assert [r.code for r in reasons] == ["gpus", "gpus"]
    assert [r.estimated_start for r in reasons] == [None, None]


def test_memory_and_cpu_are_blockers_too_on_the_node_whose_gpus_fit():
    free, capacity = cluster(node("n1", 8, mem=32 * GB, cpu=2_000))
    memory, cpu = explain([wait("M", 1, memory=64 * GB), wait("C", 1, cpu=8)], free, capacity, [], NOW)
    assert memory.code == "memory" and memory.text == "한 노드에 A100 1개와 메모리 64GB 필요 · 여유 32GB"
    assert cpu.code == "cpu" and cpu.figures == {"cpu": 8.0, "cpu_free": 2.0}


def test_any_gpu_type_and_overdue_work():
    free, capacity = cluster(node("n1", 0, gpu="V100"))
    [reason] = explain([wait("W", 2, gpu="any")], free, capacity, [busy("n1", 8, -100, gpu="V100")], NOW)
    assert reason.text == "한 노드에 GPU 2개 (종류 무관) 필요 · 여유 0개"
    assert reason.estimated_start == NOW  # overdue work is assumed to end any moment


def test_only_the_horizon_is_replayed():
    free, capacity = cluster(node("n1", 0))
    queue = [wait(f"W{i}", 1, runtime=10) for i in range(5)]
    reasons = explain(queue, free, capacity, [busy("n1", 8, 5)], NOW, horizon=2)
    assert [r.estimated_start for r in reasons] == [NOW + 5, NOW + 5, None, None, None]
    assert all(r.code == "gpus" for r in reasons)


def test_ten_thousand_waiting_workloads_are_explained_quickly():
    import time

    free, capacity = cluster(node("n1", 2), node("n2", 0), node("n3", 8, gpu="V100"))
    running = [busy("n1", 6, 100 + i) for i in range(3)] + [busy("n2", 8, 50)]
    queue = [wait(f"W{i}", 1 + i % 4, gpu="A100" if i % 3 else "V100") for i in range(10_000)]
    started = time.perf_counter()
    reasons = explain(queue, free, capacity, running, NOW)
    assert len(reasons) == 10_000 and time.perf_counter() - started < 2.0
