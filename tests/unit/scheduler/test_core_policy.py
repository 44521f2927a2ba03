import random

import pytest

from services.scheduler.core.demand import ComponentDemand, GpuFree, NodeFree
from services.scheduler.core.inventory import GpuPool, Node, NodeStatus
from services.scheduler.core.policy import QueuedWorkload, ReadyComponent, RunningAllocation, decide
from services.scheduler.core.simulation import SimJob, simulate

GB = 10**9
EASY = dict(protected_classes=(), drain_guard=False, reserve_horizon_s=None)  # the plain EASY rules


def free(name, gpus, gpu_type="A100", size=80, status=NodeStatus.ACTIVE, mem=1024 * GB, cpu=64_000):
    return NodeFree(name, status, {gpu_type: GpuFree(gpus, size * GB)}, mem, cpu)


def running(node, gpus, end, gpu_type="A100"):
    return RunningAllocation(node, gpu_type, gpus, 0, 0, end)


def job(wid, gpus, runtime, priority="normal", gpu_type="A100", **demand):
    return QueuedWorkload(wid, (ReadyComponent(f"{wid}-c", ComponentDemand(gpu_type, gpus, **demand)),),
                          runtime, priority)


def started(decision):
    return [(s.workload_id, s.node) for s in decision.starts]


def test_everything_that_fits_starts_in_order():
    d = decide([job("w1", 4, 10), job("w2", 2, 10), job("w3", 2, 10)], [free("n", 8)], [], now=0)
    assert started(d) == [("w1", "n"), ("w2", "n"), ("w3", "n")]
    assert d.reservation is None and not any(s.backfilled for s in d.starts)


def test_strict_priority_stops_at_the_blocked_head():
    queue = [job("head", 4, 100), job("small", 2, 10)]
    d = decide(queue, [free("n", 2)], [running("n", 6, end=100)], now=0, backfill=False)
    assert started(d) == []
    assert (d.reservation.workload_id, d.reservation.start_at, d.reservation.node) == ("head", 100, "n")


def test_short_work_backfills_before_the_reservation():
    queue = [job("head", 8, 100), job("short", 2, 50)]
    d = decide(queue, [free("n", 2)], [running("n", 6, end=100)], now=0)
    assert started(d) == [("short", "n")] and d.starts[0].backfilled
    assert d.reservation.start_at == 100


def test_long_work_that_would_delay_the_head_waits():
    queue = [job("head", 8, 100), job("long", 2, 500)]
    d = decide(queue, [free("n", 2)], [running("n", 6, end=100)], now=0, **EASY)
    assert started(d) == []


def test_long_work_on_capacity_the_head_does_not_need_backfills():
    # head needs 6 GPUs at t=100 on n1; 2 of n1's 8 are spare at that time
    queue = [job("head", 6, 100), job("long", 2, 500)]
    d = decide(queue, [free("n1", 2)], [running("n1", 6, end=100)], now=0, **EASY)
    assert started(d) == [("long", "n1")]
    # but not 3 GPUs: then only 5 would be left for the head at t=100
    d = decide([job("head", 6, 100), job("long", 3, 500)], [free("n1", 3)], [running("n1", 5, end=100)],
               now=0, **EASY)
    assert started(d) == []


def test_backfill_picks_a_node_that_keeps_the_head_feasible():
    nodes = [free("a", 4), free("b", 4)]
    run = [running("a", 4, end=100), running("b", 4, end=300)]
    queue = [job("head", 8, 100), job("long", 4, 1000)]
    d = decide(queue, nodes, run, now=0, **EASY)
    assert d.reservation.node == "a" and d.reservation.start_at == 100
    assert started(d) == [("long", "b")]  # best fit would tie on "a"; "a" is the head's


def test_head_reservation_with_any_gpu_type():
    nodes = [free("v", 0, "V100", 32), free("a", 0, "A100", 80)]
    run = [running("v", 8, end=50, gpu_type="V100"), running("a", 8, end=200)]
    d = decide([job("head", 4, 10, gpu_type="any", min_gpu_memory_bytes=40 * GB)], nodes, run, now=0)
    assert (d.reservation.start_at, d.reservation.node, d.reservation.gpu_type) == (200, "a", "A100")


def test_unschedulable_head_does_not_block_the_queue():
    d = decide([job("huge", 16, 10), job("ok", 2, 10)], [free("n", 8)], [], now=0, backfill=False)
    assert d.unschedulable == (("huge", "huge-c"),) and started(d) == [("ok", "n")]


def test_drained_nodes_take_nothing_and_their_work_is_ignored():
    nodes = [free("d", 8, status=NodeStatus.DRAIN), free("n", 0)]
    d = decide([job("w", 2, 10)], nodes, [running("n", 8, end=40), running("d", 0, end=10)], now=0)
    assert started(d) == [] and d.reservation.node == "n" and d.reservation.start_at == 40


def test_running_work_without_an_end_never_frees_its_capacity():
    d = decide([job("w", 8, 10)], [free("n", 0)], [running("n", 8, end=None)], now=0)
    assert d.reservation is None and d.unschedulable == (("w", "w-c"),)


def test_overdue_work_is_expected_to_end_now():
    d = decide([job("w", 8, 10)], [free("n", 0)], [running("n", 8, end=5)], now=20)
    assert d.reservation.start_at == 20


def test_parallel_ready_components_of_one_workload():
    comps = tuple(ReadyComponent(f"c{i}", ComponentDemand("A100", 2)) for i in range(3))
    d = decide([QueuedWorkload("w", comps, 10)], [free("n", 4)], [], now=0)
    assert [s.component_id for s in d.starts] == ["c0", "c1"]
    assert d.reservation.component_id == "c2"


def test_class_barrier_keeps_lower_classes_out_while_high_work_is_blocked():
    queue = [job("hi", 8, 100, "high"), job("lo", 2, 50, "low")]
    args = ([free("n", 2)], [running("n", 6, end=100)])
    assert started(decide(queue, *args, now=0)) == []
    assert started(decide(queue, *args, now=0, **EASY)) == [("lo", "n")]
    # high-priority work may still backfill behind a blocked high head
    queue = [job("hi", 8, 100, "high"), job("hi2", 2, 50, "high")]
    assert started(decide(queue, *args, now=0)) == [("hi2", "n")]


def test_drain_guard_never_extends_when_a_node_becomes_wholly_free():
    nodes = [free("a", 0), free("v", 8, "V100", 32)]
    queue = [job("head", 8, 100), job("v-long", 1, 1000, gpu_type="V100"), job("a-short", 0, 10)]
    run = [running("a", 8, end=100)]
    d = decide(queue, nodes, run, now=0)
    # v is idle (drain time = now): a 1000 s job there would postpone its being wholly free
    assert ("v-long", "v") not in started(d)
    assert ("v-long", "v") in started(decide(queue, nodes, run, now=0, **EASY))
    # under the skyline of node a (busy until 100) a 10 s job is fine
    assert ("a-short", "a") in started(d)


# ------------------------------------------------------------------------------ properties

def random_cluster(rng):
    nodes = []
    for i in range(rng.randint(2, 5)):
        gpu_type, size = rng.choice([("A100", 80), ("A100", 40), ("V100", 32)])
        nodes.append(Node(f"n{i}", gpus={gpu_type: GpuPool(8, size * GB)}, memory_bytes=512 * GB, cpu=32))
    return nodes


def random_jobs(rng, count, exact, spread_arrivals=False):
    jobs, t = [], 0.0
    for i in range(count):
        if spread_arrivals:
            t += rng.expovariate(1 / 200)
        gpus = rng.choice([1, 1, 2, 2, 3, 4, 6, 8])
        gpu_type = rng.choice(["A100", "V100", "any"])
        demand = ComponentDemand(gpu_type, gpus, 35 * GB if gpu_type == "any" else 0,
                                 gpus * rng.choice([8, 32, 60]) * GB, rng.choice([1, 2, 4]) * gpus)
        max_rt = float(rng.choice([100, 300, 600, 1200, 3600]))
        actual = max_rt if exact else max_rt * rng.uniform(0.2, 1.0)
        jobs.append(SimJob(f"j{i:03d}", t, rng.choice(["high", "normal", "normal", "low"]), demand, max_rt, actual))
    return jobs


def first_blocked_head(jobs, nodes):
    seen = []
    simulate(jobs, nodes, backfill=False,
             on_decision=lambda now, d, waiting: seen.append(d.reservation) if not seen else None)
    return seen[0].workload_id if seen and seen[0] is not None else None


@pytest.mark.parametrize("options", [EASY, {}], ids=["easy", "ours"])
def test_backfill_never_delays_the_head(options):
    """Seeded random scenarios, runtimes = max_runtime: the head blocked at t=0 starts with
    backfill no later than with strict priority."""
    rng = random.Random(20260)
    checked = backfilled = 0
    for _ in range(300):
        nodes, jobs = random_cluster(rng), random_jobs(rng, rng.randint(4, 25), exact=True)
        head = first_blocked_head(jobs, nodes)
        if head is None:
            continue
        strict = simulate(jobs, nodes, backfill=False)
        ours = simulate(jobs, nodes, backfill=True, **options)
        backfilled += len(ours.backfilled)
        assert ours.started[head] <= strict.started[head] + 1e-9, (head, ours.started[head], strict.started[head])
        checked += 1
    assert checked > 150 and backfilled > 100  # the scenarios do exercise backfill


@pytest.mark.parametrize("options", [EASY, {}], ids=["easy", "ours"])
def test_the_head_reservation_never_moves_later(options):
    """Runtimes may end early: a head's reservation only ever moves earlier, and it starts by
    the first reservation it got."""
    rng = random.Random(7)
    for _ in range(150):
        nodes, jobs = random_cluster(rng), random_jobs(rng, rng.randint(4, 25), exact=False)
        first: dict[str, float] = {}
        last: dict[str, float] = {}

        def check(now, d, waiting):
            r = d.reservation
            if r is None:
                return
            assert r.start_at <= last.get(r.workload_id, float("inf")) + 1e-9
            last[r.workload_id] = r.start_at
            first.setdefault(r.workload_id, r.start_at)

        result = simulate(jobs, nodes, backfill=True, on_decision=check, **options)
        for wid, t in first.items():
            assert result.started[wid] <= t + 1e-9


def test_decisions_never_overcommit_a_node():
    rng = random.Random(99)
    for _ in range(300):
        nodes = [NodeFree.from_node(n) for n in random_cluster(rng)]
        nodes = [n.adjusted("A100" if "A100" in n.gpus else "V100", rng.randint(0, 8), rng.randint(0, 256) * GB,
                            rng.randint(0, 16) * 1000, -1) for n in nodes]
        nodes = [n for n in nodes if min(g.free for g in n.gpus.values()) >= 0 and n.memory_bytes >= 0
                 and n.cpu_millis >= 0]
        run = [running(n.name, 8 - n.gpu_free_total, rng.uniform(0, 1000), next(iter(n.gpus))) for n in nodes]
        queue = [QueuedWorkload(j.job_id, (ReadyComponent("c", j.demand),), j.max_runtime_s, j.priority)
                 for j in random_jobs(rng, 20, exact=True)]
        d = decide(queue, nodes, run, now=0)
        state = {n.name: n for n in nodes}
        demands = {q.workload_id: q.ready[0].demand for q in queue}
        for s in d.starts:
            state[s.node] = state[s.node].take(demands[s.workload_id], s.gpu_type)
        for n in state.values():
            assert n.memory_bytes >= 0 and n.cpu_millis >= 0 and all(g.free >= 0 for g in n.gpus.values())


# ------------------------------------------------------------------ rule 6: the spare node

H = 3600.0
HORIZON = dict(reserve_horizon_s=3 * H)


def test_long_unprotected_work_never_takes_a_class_last_spare_node():
    # "b" is busy past the horizon; "a" (idle) is the class's only node that frees by now + 3 h
    nodes, run = [free("a", 8), free("b", 0)], [running("b", 8, end=10 * H)]
    assert started(decide([job("long", 8, 8 * H, "low")], nodes, run, now=0, **HORIZON)) == []
    assert started(decide([job("short", 8, 2 * H, "low")], nodes, run, now=0, **HORIZON)) == [("short", "a")]
    # protected work may take it; plain EASY/strict ignore the rule
    assert started(decide([job("long", 8, 8 * H, "high")], nodes, run, now=0, **HORIZON)) == [("long", "a")]
    assert started(decide([job("long", 8, 8 * H, "low")], nodes, run, now=0, **EASY)) == [("long", "a")]
    assert started(decide([job("long", 8, 8 * H, "low")], nodes, run, now=0, backfill=False)) == [("long", "a")]
    # with a second node freeing by the horizon one of them may take long work (a class of two
    # nodes has only the first level)
    run = [running("b", 8, end=2 * H)]
    assert started(decide([job("long", 8, 8 * H, "low")], [free("a", 8), free("b", 0)], run, now=0,
                          **HORIZON)) == [("long", "a")]


def test_a_skipped_component_does_not_hold_up_the_queue():
    nodes, run = [free("a", 8), free("b", 0)], [running("b", 8, end=10 * H)]
    d = decide([job("long", 8, 8 * H, "low"), job("next", 2, H, "low")], nodes, run, now=0, **HORIZON)
    assert started(d) == [("next", "a")] and d.reservation is None


def test_a_one_node_class_is_not_guarded():
    d = decide([job("long", 8, 8 * H, "low", gpu_type="V100")], [free("v", 8, "V100", 32), free("a", 0)],
               [running("a", 8, end=10 * H)], now=0, **HORIZON)
    assert started(d) == [("long", "v")]


def test_when_no_node_frees_by_the_horizon_no_drain_time_is_extended():
    nodes = [free("a", 4), free("b", 4)]
    run = [running("a", 4, end=5 * H), running("b", 4, end=6 * H)]
    queue = [job("long", 2, 8 * H, "normal"), job("fits", 2, 4 * H, "normal")]
    d = decide(queue, nodes, run, now=0, **HORIZON)
    assert started(d) == [("fits", "a")]  # "long" would make a or b drain later: it waits


def test_protected_work_prefers_a_node_that_is_not_the_spare():
    # "a" idle (the spare), "b" has 4 GPUs free and is busy past the horizon anyway
    nodes, run = [free("a", 8), free("b", 4)], [running("b", 4, end=10 * H)]
    d = decide([job("hi", 4, 8 * H, "high")], nodes, run, now=0, **HORIZON)
    assert started(d) == [("hi", "b")]


def test_protected_backfill_never_extends_a_node_a_blocked_protected_job_could_use():
    # the high head needs a whole node: "a" drains at 2 h (its reservation), "b" at 5 h
    nodes = [free("a", 1), free("b", 1)]
    run = [running("a", 7, end=2 * H), running("b", 7, end=5 * H)]
    queue = [job("head", 8, H, "high"), job("small", 1, 6 * H, "high")]
    # EASY allows "small" on b (capacity the head does not need at 2 h) although it keeps b
    # busy past 5 h; if a's work is late or b's ends early, the head waits for it
    assert started(decide(queue, nodes, run, now=0, drain_guard=False, reserve_horizon_s=None)) == [("small", "b")]
    assert started(decide(queue, nodes, run, now=0)) == []
    queue = [job("head", 8, H, "high"), job("small", 1, 4 * H, "high")]
    assert started(decide(queue, nodes, run, now=0)) == [("small", "b")]  # under b's skyline


def _class_drains(nodes, run, now):
    drain = {n.name: now for n in nodes}
    for r in run:
        drain[r.node] = max(drain[r.node], r.expected_end)
    return drain


@pytest.mark.parametrize("horizon", [3 * H, 600.0])
def test_rule_6_invariant_holds_for_every_decision(horizon):
    """Random states: after a decision's unprotected starts, every level k of a class of more than
    k nodes (k nodes draining by now + horizon x spare_levels[k-1]) that held still holds, and a
    class with a level short has no drain time moved past max(its drain, the first horizon)."""
    levels = (1.0, 1.5)
    rng = random.Random(606)
    bit = short_seen = 0
    for _ in range(500):
        names = [f"n{i}" for i in range(rng.randint(2, 6))]
        nodes, run = [], []
        for name in names:
            used = rng.choice([0, 2, 4, 6, 8])
            nodes.append(free(name, 8 - used))
            for _ in range(used // 2):
                run.append(running(name, 2, rng.choice([0.5, 1, 2, 4, 6, 9]) * H))
        queue = [job(f"w{i}", rng.choice([1, 2, 4, 8]), rng.choice([0.5, 1, 2, 4, 8]) * H,
                     rng.choice(["high", "normal", "low", "low"])) for i in range(rng.randint(1, 12))]
        queue.sort(key=lambda q: q.priority != "high")  # high starts come before every other start
        d = decide(queue, nodes, run, now=0, reserve_horizon_s=horizon, spare_levels=levels)
        before = _class_drains(nodes, run, 0)
        prio = {q.workload_id: q.priority for q in queue}
        for s in d.starts:  # high starts may use a spare: judge the others against what they saw
            if prio[s.workload_id] == "high":
                before[s.node] = max(before[s.node], s.expected_end)
        after = dict(before)
        for s in d.starts:
            if prio[s.workload_id] != "high":
                after[s.node] = max(after[s.node], s.expected_end)
        hs = [horizon * f for f in levels][:len(names) - 1]

        def count(drains, h):
            return sum(1 for x in drains.values() if x <= h)

        for k, h in enumerate(hs):
            if count(before, h) >= k + 1:
                assert count(after, h) >= k + 1, (k, d.starts, before, after)
        if any(count(before, h) < k + 1 for k, h in enumerate(hs)):
            short_seen += 1
            assert all(after[n] <= max(before[n], hs[0]) for n in after), (d.starts, before, after)
        bit += after != before
    assert bit > 20 and short_seen > 20  # unprotected long work did start, levels were short


def test_a_second_node_must_drain_by_the_second_level():
    # a idle (level 1: by 3 h), b drains at 4 h (level 2: 2 nodes by 4.5 h), c busy for 10 h
    nodes = [free("a", 8), free("b", 4), free("c", 0)]
    run = [running("b", 4, end=4 * H), running("c", 8, end=10 * H)]
    queue = [job("long", 4, 8 * H, "low")]
    assert started(decide(queue, nodes, run, now=0, **HORIZON)) == []  # b would leave level 2
    assert started(decide(queue, nodes, run, now=0, spare_levels=(1.0,), **HORIZON)) == [("long", "b")]
    run[1] = running("c", 8, end=4.4 * H)  # c counts for level 2: b may take long work
    assert started(decide(queue, nodes, run, now=0, **HORIZON)) == [("long", "b")]
    # short work that ends by the first horizon is always fine
    assert started(decide([job("short", 4, 2 * H, "low")], nodes, run, now=0, **HORIZON)) == [("short", "b")]


def _spare_and_busy(b_frees_at):
    # "a" idle: the class's only node draining by the horizon; "b" has 4 GPUs freeing at b_frees_at
    # and 4 busy for 10 h; "c" busy for 10 h
    nodes = [free("a", 8), free("b", 0), free("c", 0)]
    run = [running("b", 4, end=b_frees_at), running("b", 4, end=10 * H), running("c", 8, end=10 * H)]
    return nodes, run


def test_small_protected_work_is_held_off_the_spare_when_it_can_start_elsewhere_soon():
    nodes, run = _spare_and_busy(0.5 * H)
    queue = [job("hi", 4, 8 * H, "high"), job("lo", 1, H, "low")]
    d = decide(queue, nodes, run, now=0, **HORIZON)
    assert started(d) == []  # "hi" waits 30 min for b; "lo" stays out while "hi" is held (rule 5a)
    # whole-node protected work does take the spare node
    assert started(decide([job("big", 8, 8 * H, "high")], nodes, run, now=0, **HORIZON)) == [("big", "a")]
    # rule 6 as first written: any protected work may take it
    assert started(decide(queue, nodes, run, now=0, whole_node_spare=False, **HORIZON)) == [("hi", "a"), ("lo", "a")]
    # short protected work that ends by the horizon is not held
    assert started(decide([job("hi", 4, 2 * H, "high")], nodes, run, now=0, **HORIZON)) == [("hi", "a")]


def test_small_protected_work_takes_the_spare_when_nothing_else_frees_within_the_hold():
    nodes, run = _spare_and_busy(2 * H)  # b frees its 4 GPUs only in 2 h > spare_hold_s (1 h)
    queue = [job("hi", 4, 8 * H, "high")]
    assert started(decide(queue, nodes, run, now=0, **HORIZON)) == [("hi", "a")]
    assert started(decide(queue, nodes, run, now=0, spare_hold_s=3 * H, **HORIZON)) == []
    assert started(decide(queue, nodes, run, now=0, spare_hold_s=None, **HORIZON)) == []  # never
