from services.scheduler import schemas
from services.scheduler.core.allocator import ClusterSnapshot, NodeUsage, PoolUsage, Totals
from services.scheduler.core.inventory import NodeStatus
from services.scheduler.records import RunRecord


def run(run_id: str, node: str | None = "node-a", gpu_type: str | None = "A100", gpus: int = 1) -> RunRecord:
    return RunRecord(run_id=run_id, job_id="WL-1", task_id="T1", component_id=run_id, name=run_id, node=node,
                     gpu_type=gpu_type, gpu_indices=list(range(gpus)))


def snapshot() -> ClusterSnapshot:
    node = NodeUsage("node-a", NodeStatus.ACTIVE, NodeStatus.ACTIVE, None, {"A100": PoolUsage(4, 3, 1, 80 * 10**9)},
                     Totals(64 * 10**9, 10**9), Totals(8, 1))
    return ClusterSnapshot([node], {"A100": Totals(4, 3), "V100": Totals(2, 0)}, {"A100": 1, "V100": 2},
                           Totals(64 * 10**9, 10**9), Totals(8, 1))


def test_gpus_in_use_add_up_per_key_and_runs_without_gpus_do_not_count():
    runs = [run("r1", gpus=2), run("r2"), run("r3", node="node-b", gpu_type=None, gpus=0)]
    usage = {"r1": {"gpus_busy": 1}, "r2": {"gpus_busy": 1}, "r3": {}}
    assert schemas.gpus_in_use(runs, usage, key=lambda r: r.gpu_type) == {"A100": 2}
    assert schemas.gpus_in_use(runs, usage, key=lambda r: (r.node, r.gpu_type)) == {("node-a", "A100"): 2}


def test_one_run_holding_gpus_without_a_figure_makes_its_key_unknown():
    runs = [run("r1"), run("r2"), run("r3", gpu_type="V100")]
    usage = {"r1": {"gpus_busy": 1}, "r2": {"gpus_busy": None}, "r3": {"gpus_busy": 0}}
    assert schemas.gpus_in_use(runs, usage, key=lambda r: r.gpu_type) == {"A100": None, "V100": 0}


def test_gpu_used_is_null_unless_measured_and_never_the_allocation():
    body = schemas.resources(snapshot(), [], frozenset({"memory", "cpu"}), {})
    assert body["gpu"]["used"] is None and all(g["used"] is None for g in body["gpus"])
    body = schemas.resources(snapshot(), [], frozenset({"memory", "cpu", "gpu"}), {"A100": 2})
    assert body["gpu"] == {"total": 6, "allocated": 3, "used": 2, "idle": 3}
    assert {g["gpu_type"]: g["used"] for g in body["gpus"]} == {"A100": 2, "V100": 0}
    body = schemas.resources(snapshot(), [], frozenset({"gpu"}), {"A100": None})
    assert body["gpu"]["used"] is None and body["gpus"][0]["used"] is None


def test_node_gpus_used_by_node_and_type():
    node = snapshot().nodes[0]
    assert schemas.node_view(node)["gpus"]["A100"]["used"] is None
    assert schemas.node_view(node, {("node-a", "A100"): 3})["gpus"]["A100"]["used"] == 3
    assert schemas.node_view(node, {("node-b", "A100"): 3})["gpus"]["A100"]["used"] == 0


def test_workload_used_gpu_figures_come_from_the_runs_holding_gpus():
    runs = [run("r1", gpus=2), run("r2", gpu_type=None, gpus=0)]
    usage = {"r1": {"memory_bytes": 100, "cpu_cores": 0.5, "gpus_busy": 2, "gpu_memory_bytes": 7},
             "r2": {"memory_bytes": 50, "cpu_cores": 0.25}}
    assert schemas.workload_used(runs, usage, frozenset({"memory", "cpu", "gpu"})) == {
        "memory_bytes": 150, "cpu_cores": 0.75, "gpus": 2, "gpu_memory_bytes": 7}
    assert schemas.workload_used(runs, usage, frozenset({"memory", "cpu"}))["gpus"] is None
    unsampled = {"r2": usage["r2"]}
    assert schemas.workload_used(runs, unsampled, frozenset({"gpu"}))["gpus"] is None


def test_node_memory_and_cpu_used_are_measured_per_node_never_the_allocation():
    node = snapshot().nodes[0]
    runs = [run("r1"), run("r2", gpus=0), run("r3", node="node-b"), run("r4", node=None, gpu_type=None, gpus=0)]
    usage = {"r1": {"memory_bytes": 300, "cpu_cores": 0.5}, "r2": {"memory_bytes": 200, "cpu_cores": 0.25},
             "r3": {"memory_bytes": 7, "cpu_cores": 3.0}}
    used = schemas.used_on_nodes(runs, usage)
    assert used == {"node-a": {"memory_bytes": 500, "cpu_cores": 0.75}, "node-b": {"memory_bytes": 7, "cpu_cores": 3.0}}
    view = schemas.node_view(node, None, used, frozenset({"memory", "cpu"}))
    assert view["memory"]["used_bytes"] == 500 and view["memory"]["allocated"] != view["memory"]["used"]
    assert view["cpu"]["used"] == 0.75
    unmeasured = schemas.node_view(node, None, used, frozenset())
    assert unmeasured["memory"]["used_bytes"] is None and unmeasured["cpu"]["used"] is None
    idle = schemas.node_view(node, None, {}, frozenset({"memory", "cpu"}))
    assert idle["memory"]["used_bytes"] == 0 and idle["cpu"]["used"] == 0
