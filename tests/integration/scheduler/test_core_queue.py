import pytest

from services.scheduler.core.queue import Priority, QueueStatus, RedisPriorityQueue


@pytest.fixture
async def queue(redis_client, prefix):
    return RedisPriorityQueue(redis_client, prefix)


async def ids(queue):
    return [e.workload_id for e in await queue.list()]


async def fill(queue, spec):
    for i, (wid, priority) in enumerate(spec):
        await queue.enqueue(wid, priority, submitted_at=1000.0 + i)


async def test_order_is_class_then_submission_time(queue):
    await queue.enqueue("n-late", "normal", submitted_at=30)
    await queue.enqueue("l-early", "low", submitted_at=1)
    await queue.enqueue("h", "high", submitted_at=50)
    await queue.enqueue("n-early", "normal", submitted_at=10)
    assert await ids(queue) == ["h", "n-early", "n-late", "l-early"]
    assert (await queue.head()).workload_id == "h"
    assert await queue.position("n-late") == 3 and await queue.count() == 4


async def test_entries_keep_what_the_queue_screen_shows(queue):
    await queue.enqueue("w1", Priority.HIGH, submitted_at=1700000000.5, requester="kim", name="RL-DesignOpt-v1",
                        resources={"gpu_type": "A100", "gpu_count": 4, "memory": "128GB", "cpu": 8},
                        attributes={"max_runtime": "2h"})
    [entry] = await queue.list()
    assert entry.priority is Priority.HIGH and entry.status is QueueStatus.WAITING
    assert entry.requester == "kim" and entry.name == "RL-DesignOpt-v1"
    assert entry.submitted_at == 1700000000.5
    assert entry.resources == {"gpu_type": "A100", "gpu_count": 4, "memory": "128GB", "cpu": 8}
    assert entry.attributes == {"max_runtime": "2h"}


async def test_enqueue_is_idempotent_per_workload(queue):
    assert await queue.enqueue("w", "low", submitted_at=5)
    assert not await queue.enqueue("w", "high", submitted_at=1)
    [entry] = await queue.list()
    assert entry.priority is Priority.LOW and entry.submitted_at == 5


async def test_reprioritise_moves_between_classes_by_submission_time(queue):
    await fill(queue, [("h1", "high"), ("n1", "normal"), ("n2", "normal"), ("h2", "high")])
    assert await queue.reprioritise("n2", "high")
    assert await ids(queue) == ["h1", "n2", "h2", "n1"]  # n2 was submitted before h2
    assert await queue.reprioritise("h1", Priority.LOW)
    assert await ids(queue) == ["n2", "h2", "n1", "h1"]
    assert not await queue.reprioritise("missing", "high")
    with pytest.raises(ValueError):
        await queue.reprioritise("n1", "urgent")


async def test_move_before_and_after(queue):
    await fill(queue, [("a", "normal"), ("b", "normal"), ("c", "normal"), ("d", "normal")])
    assert await queue.move("d", before="a")
    assert await ids(queue) == ["d", "a", "b", "c"]
    assert await queue.move("d", after="b")
    assert await ids(queue) == ["a", "b", "d", "c"]
    assert await queue.move("a", after="c")
    assert await ids(queue) == ["b", "d", "c", "a"]
    assert await queue.move("a", before="b")
    assert await ids(queue) == ["a", "b", "d", "c"]
    # later submissions still go to the end of the class
    await queue.enqueue("e", "normal", submitted_at=2000)
    assert (await ids(queue))[-1] == "e"


async def test_move_next_to_another_class_takes_its_class(queue):
    await fill(queue, [("h1", "high"), ("h2", "high"), ("n1", "normal")])
    assert await queue.move("n1", before="h2")
    assert await ids(queue) == ["h1", "n1", "h2"]
    assert (await queue.get("n1")).priority is Priority.HIGH


async def test_moves_need_waiting_workloads(queue):
    await fill(queue, [("a", "normal"), ("b", "normal")])
    assert not await queue.move("missing", before="a")
    assert not await queue.move("a", before="missing")
    await queue.set_status("b", QueueStatus.RUNNING)
    assert not await queue.move("a", after="b")
    with pytest.raises(ValueError):
        await queue.move("a", before="a")
    with pytest.raises(ValueError):
        await queue.move("a")


async def test_repeated_moves_into_the_same_gap_renumber_without_losing_order(queue):
    await fill(queue, [(f"w{i}", "normal") for i in range(5)])
    # always squeeze the newest mover between w0 and the previous mover: halves the gap each time
    movers = [f"m{i}" for i in range(80)]
    for i, m in enumerate(movers):
        await queue.enqueue(m, "normal", submitted_at=5000 + i)
        await queue.move(m, after="w0")
    order = await ids(queue)
    assert order == ["w0"] + movers[::-1] + ["w1", "w2", "w3", "w4"]
    ranks = [e.rank for e in await queue.list()]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


async def test_status_takes_entries_out_of_the_order_and_back(queue):
    await fill(queue, [("a", "normal"), ("b", "normal"), ("c", "low")])
    assert await queue.set_status("a", QueueStatus.RUNNING)
    assert await ids(queue) == ["b", "c"]
    assert (await queue.get("a")).status is QueueStatus.RUNNING and await queue.position("a") is None
    assert await queue.set_status("a", "waiting")
    assert await ids(queue) == ["a", "b", "c"]
    assert await queue.remove("b") and not await queue.remove("b")
    assert await queue.get("b") is None and await ids(queue) == ["a", "c"]


async def test_iterate_walks_large_queues_in_batches(queue):
    await fill(queue, [(f"w{i:03d}", ("high", "normal", "low")[i % 3]) for i in range(60)])
    walked = [e.workload_id async for e in queue.iterate(batch=7)]
    assert walked == await ids(queue) and len(walked) == 60
    assert [e.workload_id for e in await queue.list(limit=3)] == walked[:3]


async def test_mirror_applies_many_states_in_one_round_trip_and_names_the_entries_it_already_knew(queue):
    await queue.enqueue("known", "low", submitted_at=5, name="as it was")
    await queue.enqueue("starts", "normal", submitted_at=6)
    await queue.enqueue("ends", "normal", submitted_at=7)
    known = await queue.mirror(
        waiting=[dict(workload_id="new-high", priority="high", submitted_at=20, requester="kim", name="fresh",
                      resources={"gpu_count": 4}),
                 dict(workload_id="new-normal", priority="normal", submitted_at=10),
                 dict(workload_id="known", priority="high", submitted_at=5, name="changed")],
        running=["starts"], gone=["ends", "never-queued"])
    assert known == ["known"]
    assert await ids(queue) == ["new-high", "new-normal", "known"]  # "known" kept its class (low)
    entry = await queue.get("known")
    assert entry.priority is Priority.LOW and entry.name == "as it was"
    assert (await queue.get("new-high")).resources == {"gpu_count": 4}
    assert (await queue.get("starts")).status is QueueStatus.RUNNING
    assert await queue.get("ends") is None
    assert await queue.mirror() == []
