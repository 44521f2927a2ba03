import asyncio
import random

import pytest

from services.scheduler.core.allocator import AllocationConflict, Order, RedisAllocator
from services.scheduler.core.demand import ComponentDemand, best_fit
from services.scheduler.core.inventory import GpuPool, Node, NodeStatus, load_nodes_file

GB = 10**9


def gpu_node(name, count=8, gpu_type="A100", size=80, mem=1024, cpu=64, status=NodeStatus.ACTIVE):
    return Node(name, status, {gpu_type: GpuPool(count, size * GB)}, mem * GB, cpu)


@pytest.fixture
async def allocator(redis_client, prefix):
    alloc = RedisAllocator(redis_client, prefix)
    await alloc.load_inventory(load_nodes_file())
    return alloc


async def test_allocates_specific_gpu_indices_on_the_best_fitting_node(allocator):
    a = await allocator.allocate("a1", "w1", "c1", ComponentDemand("A100", 2, memory_bytes=64 * GB, cpu=4))
    assert (a.node, a.gpu_type, a.gpu_indices) == ("node-a100-1", "A100", (0, 1))
    b = await allocator.allocate("a2", "w1", "c2", ComponentDemand("A100", 4))
    assert (b.node, b.gpu_indices) == ("node-a100-1", (2, 3, 4, 5))  # least leftover: 6 free beats 8
    c = await allocator.allocate("a3", "w2", "c1", ComponentDemand("A100", 4))
    assert c.node == "node-a100-2"  # 2 left on node-a100-1
    snap = await allocator.snapshot()
    by_name = {n.name: n for n in snap.nodes}
    assert by_name["node-a100-1"].gpus["A100"].free == 2
    assert by_name["node-a100-1"].memory.allocated == 64 * GB and by_name["node-a100-1"].cpu.allocated == 4
    assert snap.gpu_types["A100"].total == 16 and snap.gpu_types["A100"].allocated == 10
    assert snap.gpu_free_schedulable == {"A100": 6, "V100": 8}


async def test_gpus_of_one_component_never_span_nodes(redis_client, prefix):
    alloc = RedisAllocator(redis_client, prefix)
    await alloc.load_inventory([gpu_node("n1", 2), gpu_node("n2", 2)])
    assert await alloc.allocate("a", "w", "c", ComponentDemand("A100", 4)) is None
    assert (await alloc.allocate("b", "w", "c", ComponentDemand("A100", 2))).node == "n1"


async def test_any_gpu_type_with_minimum_memory(allocator):
    a = await allocator.allocate("a", "w", "c", ComponentDemand("any", 8, min_gpu_memory_bytes=35 * GB))
    assert (a.node, a.gpu_type) == ("node-a100-1", "A100")  # tie on leftover 0: node name
    b = await allocator.allocate("b", "w", "c", ComponentDemand("any", 8, min_gpu_memory_bytes=35 * GB))
    assert b.node == "node-a100-2"
    assert await allocator.allocate("c", "w", "c", ComponentDemand("any", 1, min_gpu_memory_bytes=35 * GB)) is None
    d = await allocator.allocate("d", "w", "c", ComponentDemand("any", 1, min_gpu_memory_bytes=16 * GB))
    assert (d.node, d.gpu_type) == ("node-v100-1", "V100")


async def test_memory_and_cpu_are_reserved_too(redis_client, prefix):
    alloc = RedisAllocator(redis_client, prefix)
    await alloc.load_inventory([gpu_node("n", mem=100, cpu=8)])
    assert await alloc.allocate("a", "w", "c", ComponentDemand("A100", 1, memory_bytes=60 * GB, cpu=2.5))
    assert await alloc.allocate("b", "w", "c", ComponentDemand("A100", 1, memory_bytes=60 * GB)) is None
    assert await alloc.allocate("c", "w", "c", ComponentDemand("A100", 1, cpu=6)) is None
    assert await alloc.allocate("d", "w", "c", ComponentDemand("A100", 1, memory_bytes=40 * GB, cpu=5.5))


async def test_drain_stops_new_placements_only(allocator):
    running = await allocator.allocate("a", "w", "c", ComponentDemand("V100", 2))
    assert await allocator.set_node_status("node-v100-1", NodeStatus.DRAIN)
    assert await allocator.allocate("b", "w", "c", ComponentDemand("V100", 1)) is None
    assert (await allocator.get("a")) == running
    node = {n.name: n for n in (await allocator.snapshot()).nodes}["node-v100-1"]
    assert node.status is NodeStatus.DRAIN and node.override is NodeStatus.DRAIN
    assert node.gpus["V100"].allocated == 2
    assert await allocator.release("a")
    assert await allocator.set_node_status("node-v100-1", None)
    assert (await allocator.allocate("c", "w", "c", ComponentDemand("V100", 8))).node == "node-v100-1"
    assert not await allocator.set_node_status("no-such-node", NodeStatus.DRAIN)


async def test_reloading_the_inventory_keeps_allocations(redis_client, prefix):
    alloc = RedisAllocator(redis_client, prefix)
    await alloc.load_inventory([gpu_node("n1"), gpu_node("n2")])
    a = await alloc.allocate("a", "w", "c", ComponentDemand("A100", 3, memory_bytes=10 * GB, cpu=1))
    await alloc.allocate("b", "w", "c", ComponentDemand("A100", 8, cpu=1))  # fills n2
    # n1 is cordoned (observed Drain), n2 disappears while it still runs "b"
    await alloc.load_inventory([gpu_node("n1", status=NodeStatus.DRAIN), gpu_node("n3")])
    snap = {n.name: n for n in (await alloc.snapshot()).nodes}
    assert snap["n1"].status is NodeStatus.DRAIN and snap["n1"].gpus["A100"].allocated == 3
    assert snap["n1"].memory.allocated == 10 * GB
    assert snap["n2"].status is NodeStatus.DOWN and snap["n2"].allocation_count == 1
    assert (await alloc.allocate("c", "w", "c", ComponentDemand("A100", 1))).node == "n3"
    assert await alloc.get("a") == a
    await alloc.release("b")  # the vanished node goes once its last allocation does
    assert "n2" not in {n.name for n in (await alloc.snapshot()).nodes}
    await alloc.load_inventory([gpu_node("n1"), gpu_node("n3")])
    d = await alloc.allocate("d", "w", "c", ComponentDemand("A100", 5), nodes=["n1"])
    assert set(d.gpu_indices).isdisjoint(a.gpu_indices) and len(d.gpu_indices) == 5


async def test_release_frees_exactly_once(allocator):
    await allocator.allocate("a", "w", "c", ComponentDemand("V100", 8, memory_bytes=100 * GB, cpu=10))
    assert await allocator.release("a") is True
    assert await allocator.release("a") is False
    node = {n.name: n for n in (await allocator.snapshot()).nodes}["node-v100-1"]
    assert node.gpus["V100"].free == 8 and node.gpus["V100"].allocated == 0
    assert node.memory.allocated == 0 and node.cpu.allocated == 0
    b = await allocator.allocate("b", "w", "c", ComponentDemand("V100", 8))
    assert b.gpu_indices == tuple(range(8))


async def test_allocate_is_idempotent_per_allocation_id(allocator):
    first = await allocator.allocate("same", "w", "c", ComponentDemand("A100", 2))
    again = await allocator.allocate("same", "w", "c", ComponentDemand("A100", 2))
    assert again.reused and again.gpu_indices == first.gpu_indices and again.node == first.node
    snap = await allocator.snapshot()
    assert snap.gpu_types["A100"].allocated == 2


async def test_listed_nodes_restrict_and_order_the_candidates(allocator):
    a = await allocator.allocate("a", "w", "c", ComponentDemand("A100", 1),
                                 nodes=["node-a100-2", "node-a100-1"], order=Order.LISTED)
    assert a.node == "node-a100-2"
    b = await allocator.allocate("b", "w", "c", ComponentDemand("A100", 1), nodes=["node-a100-2", "node-a100-1"])
    assert b.node == "node-a100-2"  # best fit among the listed: 7 free beats 8
    assert await allocator.allocate("c", "w", "c", ComponentDemand("A100", 1), nodes=["node-v100-1"]) is None


async def test_cpu_only_component(allocator):
    await allocator.allocate("g", "w", "c", ComponentDemand("V100", 7))
    a = await allocator.allocate("a", "w", "c", ComponentDemand(gpu_count=0, memory_bytes=GB, cpu=2))
    assert a.node == "node-v100-1" and a.gpu_indices == () and a.gpu_type is None


async def test_leases_expire_and_renew(allocator):
    a = await allocator.allocate("a", "w1", "c", ComponentDemand("A100", 1), lease_seconds=0.05, expected_end=123.5)
    b = await allocator.allocate("b", "w2", "c", ComponentDemand("A100", 1), lease_seconds=60)
    assert a.expected_end == 123.5 and b.lease_expires_at > a.lease_expires_at
    await asyncio.sleep(0.1)
    assert [x.allocation_id for x in await allocator.expired_allocations()] == ["a"]
    assert await allocator.renew_lease("a", 60) > a.lease_expires_at
    assert await allocator.expired_allocations() == []
    assert await allocator.release("a", only_if_expired=True) is False  # renewed meanwhile
    assert await allocator.renew_lease("gone", 60) is None
    assert [x.allocation_id for x in await allocator.allocations(workload_id="w2")] == ["b"]
    assert {x.allocation_id for x in await allocator.allocations()} == {"a", "b"}


async def test_restore_puts_an_allocation_back_exactly(allocator):
    r = await allocator.restore("r", "w", "c", node="node-a100-1", gpu_type="A100", gpu_indices=[5, 6],
                                memory_bytes=10 * GB, cpu_millis=1500, expected_end=99.0)
    assert r.gpu_indices == (5, 6) and r.node == "node-a100-1" and not r.reused
    again = await allocator.restore("r", "w", "c", node="node-a100-1", gpu_type="A100", gpu_indices=[5, 6],
                                    memory_bytes=10 * GB, cpu_millis=1500)
    assert again.reused
    nxt = await allocator.allocate("n", "w", "c", ComponentDemand("A100", 6), nodes=["node-a100-1"])
    assert set(nxt.gpu_indices) == {0, 1, 2, 3, 4, 7}
    assert await allocator.restore("x", "w", "c", node="nope", gpu_type="A100", gpu_indices=[0],
                                   memory_bytes=0, cpu_millis=0) is None


async def test_restore_refuses_gpus_another_allocation_holds_and_changes_nothing(allocator):
    held = await allocator.allocate("held", "w1", "c", ComponentDemand("A100", 2), nodes=["node-a100-1"])
    before = await allocator.snapshot()
    with pytest.raises(AllocationConflict, match=f"GPU {held.gpu_indices[1]}"):
        await allocator.restore("stale", "w2", "c", node="node-a100-1", gpu_type="A100",
                                gpu_indices=[7, held.gpu_indices[1]], memory_bytes=GB, cpu_millis=100)
    assert await allocator.get("stale") is None
    assert await allocator.snapshot() == before  # GPU 7 not taken either: all or nothing
    nxt = await allocator.allocate("n", "w", "c", ComponentDemand("A100", 6), nodes=["node-a100-1"])
    assert set(nxt.gpu_indices).isdisjoint(held.gpu_indices) and len(nxt.gpu_indices) == 6


async def test_two_replicas_hammering_never_over_allocate(redis_client, second_redis_client, prefix):
    """Two allocators with separate connection pools (two scheduler replicas) allocate and
    release concurrently; afterwards every node is consistent and no GPU was handed out twice."""
    nodes = [gpu_node(f"n{i}", 8, *(("A100", 80) if i % 2 else ("V100", 32)), mem=256, cpu=16) for i in range(6)]
    replicas = [RedisAllocator(redis_client, prefix), RedisAllocator(second_redis_client, prefix)]
    await replicas[0].load_inventory(nodes)
    capacity = {n.name: n for n in nodes}
    violations: list[str] = []

    async def check_live() -> None:
        live = await replicas[0].allocations()
        seen: set[tuple[str, int]] = set()
        per_node: dict[str, list[int]] = {}
        for a in live:
            for i in a.gpu_indices:
                if (a.node, i) in seen:
                    violations.append(f"GPU {a.node}/{i} reserved twice")
                seen.add((a.node, i))
            used = per_node.setdefault(a.node, [0, 0, 0])
            used[0] += a.gpu_count
            used[1] += a.memory_bytes
            used[2] += a.cpu_millis
        for name, (g, mem, cpu) in per_node.items():
            node = capacity[name]
            if g > node.gpu_total or mem > node.memory_bytes or cpu > node.cpu * 1000:
                violations.append(f"{name} over-allocated: {g} GPUs, {mem} B, {cpu} m")

    async def replica(index: int, worker: int) -> int:
        rng = random.Random(index * 10 + worker)
        mine: list[str] = []
        granted = 0
        for step in range(400):
            if mine and rng.random() < 0.4:
                await replicas[index].release(mine.pop(rng.randrange(len(mine))))
                continue
            demand = ComponentDemand(rng.choice(["A100", "V100", "any"]), rng.choice([1, 2, 3, 4, 8]),
                                     memory_bytes=rng.choice([8, 32, 64]) * GB, cpu=rng.choice([1, 2, 4]))
            a = await replicas[index].allocate(f"r{index}-{worker}-{step}", f"w{index}", f"c{step}", demand)
            if a is not None:
                mine.append(a.allocation_id)
                granted += 1
            if step % 50 == 0:
                await check_live()
        return granted

    granted = await asyncio.gather(replica(0, 0), replica(1, 0), replica(0, 1), replica(1, 1))
    await check_live()
    assert violations == []
    assert sum(granted) > 300
    snap = await replicas[1].snapshot()
    live = await replicas[1].allocations()
    for node in snap.nodes:
        on_node = [a for a in live if a.node == node.name]
        for t, pool in node.gpus.items():
            assert pool.allocated == sum(a.gpu_count for a in on_node)
            assert pool.free == pool.total - pool.allocated
        assert node.memory.allocated == sum(a.memory_bytes for a in on_node)


async def test_lua_choice_equals_the_python_rule(redis_client, prefix):
    """The Lua script and demand.best_fit pick the same (node, type) on random states."""
    rng = random.Random(5)
    nodes = []
    for i in range(12):
        gpu_type, size = rng.choice([("A100", 80), ("A100", 40), ("V100", 32), ("T4", 16)])
        nodes.append(gpu_node(f"node-{rng.randint(0, 99):02d}-{i}", rng.choice([4, 8]), gpu_type, size,
                              mem=rng.choice([128, 512]), cpu=rng.choice([16, 64])))
    alloc = RedisAllocator(redis_client, prefix)
    await alloc.load_inventory(nodes)
    for step in range(300):
        demand = ComponentDemand(rng.choice(["A100", "V100", "T4", "any"]), rng.choice([0, 1, 2, 3, 4]),
                                 rng.choice([0, 20 * GB, 40 * GB]), rng.choice([0, 16, 64]) * GB,
                                 rng.choice([0, 1, 8]))
        expected = best_fit((await alloc.snapshot()).free_nodes(), demand)
        got = await alloc.allocate(f"a{step}", "w", "c", demand)
        got_choice = (got.node, got.gpu_type) if got else None
        expected_choice = (expected.node, expected.gpu_type) if expected else None
        assert got_choice == expected_choice, (step, demand)
        if got and rng.random() < 0.3:
            await alloc.release(got.allocation_id)
