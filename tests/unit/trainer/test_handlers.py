"""The trainer's handlers, through its message bus, over a unit of work without servers."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.events import (AppDeleted, AppSpecCreated, Event, WorkloadCancelled, WorkloadFailed, WorkloadQueued,
                              WorkloadStarted, make_event)
from contracts.topology import SAGA_EVENTS
from contracts.workload import RequestedResources
from services.kit import metrics
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.kit.messagebus import MessageBus
from services.trainer import domain, handlers
from services.trainer.commands import CancelTrainingRequest, SubmitTrainingRequest
from tests.support.fakes import FakeUnitOfWorks
from tests.unit.approval.factory import seed_spec, small_spec, workload
from tests.unit.trainer.fakes import Tables, trainer_units

T0 = datetime(2026, 2, 9, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def tables() -> Tables:
    return Tables()


@pytest.fixture
def uows(tables: Tables) -> FakeUnitOfWorks:
    return trainer_units(tables)


@pytest.fixture
def bus(uows: FakeUnitOfWorks) -> MessageBus:
    return MessageBus(uows, commands=handlers.COMMANDS, events=handlers.EVENTS, locks=handlers.LOCKS,
                      together=handlers.TOGETHER)


def event(event_type: str, data, *, seconds: int = 0, producer: str = "scheduler") -> Event:
    made = make_event(event_type, data, producer=producer, correlation_id=getattr(data, "workload_id", "APP"))
    return made.model_copy(update={"occurred_at": T0 + timedelta(seconds=seconds)})


async def ready(bus: MessageBus, spec) -> None:
    await bus.handle_event(event("app.spec_created", AppSpecCreated(app_id=spec.app_id, version=spec.version, spec=spec),
                                 producer="library"))


async def submitted(bus: MessageBus, uows: FakeUnitOfWorks, **changes) -> str:
    """A request kim submitted for the seed App, its `training.requested` already on its timeline."""
    await ready(bus, seed_spec())
    values = dict(app_id="APP-A1B2C3", requester="kim")
    values.update(changes)
    wl = await bus.handle(SubmitTrainingRequest(**values))
    [requested] = [item for item in uows.published if item.type == "training.requested"]
    await bus.handle_event(event("training.requested", requested.data, producer="trainer"))
    uows.published.clear()
    return wl.workload_id


# ---------------------------------------------------------------------- submitting

def submissions_counted() -> float:
    return metrics.WORKLOADS.labels("trainer", "submitted")._value.get()


async def test_submitting_a_ready_app_stores_the_request_and_publishes_training_requested(bus, uows, tables):
    await ready(bus, seed_spec())
    counted = submissions_counted()
    wl = await bus.handle(SubmitTrainingRequest(app_id="APP-A1B2C3", requester="kim", workload_id="WL-0000ABCD",
                                                priority="high", name="tuned"))
    assert uows.types() == ["training.requested"]
    [published] = uows.published
    assert published.correlation_id == "WL-0000ABCD" and published.data == wl == tables.requests["WL-0000ABCD"].workload
    assert (wl.requester, wl.priority, wl.name, wl.spec_version) == ("kim", "high", "tuned", "1.0.0")
    assert tables.requests["WL-0000ABCD"].source == "trainer" and submissions_counted() == counted + 1


async def test_what_a_submission_leaves_out_comes_from_the_apps_largest_component_and_training_config(bus):
    await ready(bus, seed_spec())
    wl = await bus.handle(SubmitTrainingRequest(app_id="APP-A1B2C3", requester="kim",
                                                training_config={"episodes": 50}, simulation_seed=7,
                                                env_vars={"RUN_MODE": "fast"}))
    assert (wl.resources.gpu_type, wl.resources.gpu_count, wl.resources.memory) == ("A100", 4, "128GB")
    assert wl.training_config.episodes == 50 and wl.training_config.learning_rate == 0.001
    assert wl.training_config.env_config["simulation_seed"] == 7
    assert wl.spec.env_vars["RUN_MODE"] == "fast" and wl.spec.training_config.episodes == 50


async def test_submitting_an_app_that_is_not_ready_publishes_nothing(bus, uows, tables):
    counted = submissions_counted()
    with pytest.raises(Invalid) as refused:
        await bus.handle(SubmitTrainingRequest(app_id="APP-NOPE00", requester="kim"))
    assert refused.value.code == "app_not_ready"
    await ready(bus, seed_spec())
    with pytest.raises(Invalid, match="version 9.9.9 of app APP-A1B2C3"):
        await bus.handle(SubmitTrainingRequest(app_id="APP-A1B2C3", requester="kim", spec_version="9.9.9"))
    assert uows.published == [] and tables.requests == {}
    assert submissions_counted() == counted


async def test_a_deleted_app_can_no_longer_be_submitted(bus, uows, tables):
    await ready(bus, seed_spec())
    await bus.handle(SubmitTrainingRequest(app_id="APP-A1B2C3", requester="kim"))  # its spec is cached now
    uows.published.clear()
    await bus.handle_event(event("app.deleted", AppDeleted(app_id="APP-A1B2C3", deleted_by="kim"), producer="library"))
    with pytest.raises(Invalid, match="not a ready app"):
        await bus.handle(SubmitTrainingRequest(app_id="APP-A1B2C3", requester="kim"))
    assert uows.published == [] and len(tables.requests) == 1


async def test_a_submission_built_from_a_stale_cached_spec_is_rebuilt_from_the_latest_version(bus, uows):
    await ready(bus, small_spec((1, "16GB"), app_id="APP-5MA11A", version="1.0.0"))
    await bus.handle(SubmitTrainingRequest(app_id="APP-5MA11A", requester="kim"))  # caches 1.0.0 as the latest
    newer = small_spec((2, "32GB"), app_id="APP-5MA11A", version="1.1.0")
    await ready(bus, newer.model_copy(update={"created_at": newer.created_at + timedelta(hours=1)}))
    uows.published.clear()
    wl = await bus.handle(SubmitTrainingRequest(app_id="APP-5MA11A", requester="kim"))
    assert (wl.spec_version, wl.resources.gpu_count) == ("1.1.0", 2)
    assert [item.data.spec_version for item in uows.published] == ["1.1.0"]


async def test_an_envelope_smaller_than_the_largest_component_is_refused_and_publishes_nothing(bus, uows, tables):
    await ready(bus, seed_spec())
    with pytest.raises(Invalid) as refused:
        await bus.handle(SubmitTrainingRequest(app_id="APP-A1B2C3", requester="kim", resources=RequestedResources(
            gpu_type="A100", gpu_count=1, memory="128GB")))
    assert refused.value.code == "envelope_too_small" and uows.published == [] and tables.requests == {}


# ---------------------------------------------------------------------- cancelling

async def test_the_requester_asking_to_cancel_twice_publishes_one_cancel_requested(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    first = await bus.handle(CancelTrainingRequest(workload_id=workload_id, requested_by="kim"))
    second = await bus.handle(CancelTrainingRequest(workload_id=workload_id, requested_by="kim"))
    assert uows.types() == ["workload.cancel_requested"]
    assert uows.published[0].data.requested_by == "kim" and uows.published[0].correlation_id == workload_id
    assert (first.status, first.cancel_requested_by) == ("waiting", "kim")
    assert second.cancel_requested_at == first.cancel_requested_at == tables.requests[workload_id].cancel_requested_at


async def test_an_admin_may_cancel_someone_elses_request(bus, uows):
    workload_id = await submitted(bus, uows)
    cancelled = await bus.handle(CancelTrainingRequest(workload_id=workload_id, requested_by="admin", by_admin=True))
    assert cancelled.cancel_requested_by == "admin" and uows.types() == ["workload.cancel_requested"]


async def test_someone_other_than_the_requester_or_an_admin_may_not_cancel(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    with pytest.raises(Forbidden, match="only the requester \\(kim\\)"):
        await bus.handle(CancelTrainingRequest(workload_id=workload_id, requested_by="lee"))
    assert uows.published == [] and tables.requests[workload_id].cancel_requested_by is None


async def test_cancelling_an_unknown_request_is_not_found(bus, uows):
    with pytest.raises(NotFound, match="WL-NOPE0000"):
        await bus.handle(CancelTrainingRequest(workload_id="WL-NOPE0000", requested_by="kim"))
    assert uows.published == []


async def test_cancelling_a_request_that_has_ended_is_a_conflict(bus, uows):
    workload_id = await submitted(bus, uows)
    await bus.handle_event(event("workload.cancelled", WorkloadCancelled(
        workload_id=workload_id, cancelled_by="admin", was_running=False), seconds=5))
    with pytest.raises(Conflict) as refused:
        await bus.handle(CancelTrainingRequest(workload_id=workload_id, requested_by="kim"))
    assert (refused.value.code, refused.value.extra) == ("already_ended", {"status": "cancelled"})
    assert uows.published == []


# ---------------------------------------------------------------------- the saga timeline

def queued(workload_id: str, seconds: int) -> Event:
    return event("workload.queued", WorkloadQueued(workload_id=workload_id, priority="normal"), seconds=seconds)


def started(workload_id: str, seconds: int) -> Event:
    return event("workload.started", WorkloadStarted(workload_id=workload_id), seconds=seconds)


def failed(workload_id: str, seconds: int) -> Event:
    return event("workload.failed", WorkloadFailed(workload_id=workload_id, stage="run", reason="exit 1"),
                 seconds=seconds)


def step_observations(step: str) -> tuple[float, float]:
    """How many durations the trainer observed for the step, and their sum."""
    child = metrics.SAGA_STEP_SECONDS.labels(step)
    count = sum(sample.value for sample in metrics.SAGA_STEP_SECONDS.collect()[0].samples
                if sample.name.endswith("_count") and sample.labels == {"step": step})
    return count, child._sum.get()


async def test_an_event_that_arrives_after_a_later_one_still_times_its_own_step(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    await bus.handle_event(started(workload_id, 3_000_000_000))  # long after the request
    before = step_observations("workload.queued")
    requested = max(entry.occurred_at for entry in tables.timelines[workload_id]
                    if entry.type == "training.requested")
    late = queued(workload_id, 3_000_000_000 - 10)
    await bus.handle_event(late)
    count, total = step_observations("workload.queued")
    assert count - before[0] == 1  # timed from the entry before it, not skipped for the one after it
    assert total - before[1] == pytest.approx((late.occurred_at - requested).total_seconds())


def timeline(tables: Tables, workload_id: str) -> list[str]:
    return [entry.type for entry in sorted(tables.timelines[workload_id], key=lambda entry: entry.occurred_at)]


async def test_a_saga_event_is_added_to_its_workloads_timeline_and_moves_its_status(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    await bus.handle_event(queued(workload_id, 1))
    assert timeline(tables, workload_id) == ["training.requested", "workload.queued"]
    assert tables.requests[workload_id].status == "queued" and uows.published == []


async def test_an_event_delivered_late_re_derives_the_status_from_the_whole_timeline(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    await bus.handle_event(started(workload_id, 3))
    await bus.handle_event(failed(workload_id, 2))  # it happened before the start: the run had already failed
    assert timeline(tables, workload_id) == ["training.requested", "workload.failed", "workload.started"]
    assert tables.requests[workload_id].status == "failed"
    assert tables.requests[workload_id].last_event_at == T0 + timedelta(seconds=3)


async def test_an_event_delivered_twice_is_added_once(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    step = queued(workload_id, 1)
    await bus.handle_event(step)
    await bus.handle_event(step)
    assert timeline(tables, workload_id) == ["training.requested", "workload.queued"]


async def test_a_request_another_system_published_is_recorded_with_the_steps_that_came_before_it(bus, uows, tables):
    spec = small_spec((1, "16GB"))
    await ready(bus, spec)
    wl = workload(spec, workload_id="EXT-MES-0042", requester="mes-system")
    counted = submissions_counted()
    await bus.handle_event(queued(wl.workload_id, 2))  # before the request it is about
    outside = event("training.requested", wl, seconds=1, producer="mes-system")
    await bus.handle_event(outside)
    row = tables.requests["EXT-MES-0042"]
    assert (row.source, row.status) == ("mes-system", "queued")
    assert timeline(tables, "EXT-MES-0042") == ["training.requested", "workload.queued"]
    # accepted: it goes on to approval as the trainer's own request, caused by the outside one
    [accepted] = uows.published
    assert (accepted.type, accepted.cause) == ("training.requested", outside)
    assert submissions_counted() == counted + 1


# ---------------------------------------------------------------------- outside requests: the trainer's gate

async def test_an_outside_request_for_an_app_that_is_not_ready_is_refused_with_the_reason(bus, uows, tables):
    wl = workload(small_spec((1, "16GB"), app_id="APP-N0PE00"), workload_id="EXT-0000N0PE", requester="mes")
    await bus.handle_event(event("training.requested", wl, seconds=1, producer="mes"))
    row = tables.requests["EXT-0000N0PE"]
    assert (row.source, row.status) == ("mes", "refused")
    assert timeline(tables, "EXT-0000N0PE") == ["training.requested", "training.refused"]
    refusal = tables.timelines["EXT-0000N0PE"][-1]
    assert refusal.summary == "refused: version 1.0.0 of app APP-N0PE00 is not a ready app on the platform"
    assert (refusal.producer, refusal.details["published_by"]) == ("trainer", "mes")
    assert uows.published == []  # nothing goes on to approval


async def test_an_outside_request_names_itself_or_whom_it_acts_for_never_a_platform_user(bus, uows, tables):
    spec = small_spec((1, "16GB"))
    await ready(bus, spec)
    await bus.handle(SubmitTrainingRequest(app_id=spec.app_id, requester="kim"))  # kim is a platform user
    uows.published.clear()
    await bus.handle_event(event("training.requested", workload(spec, workload_id="EXT-00000001", requester="kim"),
                                 producer="mes"))
    assert tables.requests["EXT-00000001"].status == "refused"
    assert "requester 'kim' is not one 'mes' may name" in tables.timelines["EXT-00000001"][-1].summary
    assert uows.published == []
    for number, requester in ((2, "mes:kim"), (3, "mes")):
        await bus.handle_event(event("training.requested", workload(spec, workload_id=f"EXT-0000000{number}",
                                                                    requester=requester), producer="mes"))
        assert tables.requests[f"EXT-0000000{number}"].status == "waiting"
    assert [item.type for item in uows.published] == ["training.requested"] * 2
    for requester in ("mes:", "mesa", "other:kim"):
        assert not domain.outside_requester_allowed(requester, "mes")


async def test_an_accepted_outside_request_runs_the_platforms_spec_not_its_snapshot(bus, uows, tables):
    spec = small_spec((1, "16GB"))
    await ready(bus, spec)
    wl = workload(spec, workload_id="EXT-00000003", requester="mes")
    tampered = wl.spec.model_copy(deep=True)
    tampered.tasks[0].components[0].image.registry = "evil.example/miner"
    await bus.handle_event(event("training.requested", wl.model_copy(update={"spec": tampered}), producer="mes"))
    [accepted] = uows.published
    assert accepted.data.spec.tasks[0].components[0].image == spec.tasks[0].components[0].image
    assert tables.requests["EXT-00000003"].workload.spec.tasks[0].components[0].image.registry != "evil.example/miner"


async def test_an_outside_request_too_small_for_its_app_is_refused(bus, uows, tables):
    spec = small_spec((2, "16GB"))
    await ready(bus, spec)
    wl = workload(spec, workload_id="EXT-00000004", requester="mes", envelope=(1, "16GB"))
    await bus.handle_event(event("training.requested", wl, producer="mes"))
    assert tables.requests["EXT-00000004"].status == "refused"
    assert "gpu_count 1 is below the 2 GPUs" in tables.timelines["EXT-00000004"][-1].summary
    assert uows.published == []


async def test_an_outside_request_reusing_a_known_workload_id_never_touches_its_timeline(bus, uows, tables):
    workload_id = await submitted(bus, uows)
    before = list(tables.timelines[workload_id])
    await bus.handle_event(event("training.requested", workload(small_spec((1, "8GB")), workload_id=workload_id,
                                                                requester="mes"), producer="mes"))
    assert tables.timelines[workload_id] == before and tables.requests[workload_id].source == "trainer"
    assert uows.published == []


async def test_a_delivered_batch_makes_the_same_timelines_and_statuses_as_one_event_at_a_time(uows, tables):
    spec = small_spec((1, "16GB"))
    backlog = []
    for n in range(3):
        workload_id = f"WL-BA7C{n:04d}"
        request = event("training.requested", workload(spec, workload_id=workload_id, requester="other"),
                        producer="other")
        backlog.append([request, queued(workload_id, 1), failed(workload_id, 3), started(workload_id, 2)])
    batch = [step for steps in zip(*backlog) for step in steps]  # interleaved, the second step delivered twice
    batch.insert(4, batch[3])
    tables.specs[(spec.app_id, spec.version)] = spec
    await handlers.add_to_timelines(batch, uows())
    one_at_a_time = Tables(specs={(spec.app_id, spec.version): spec})
    alone_units = trainer_units(one_at_a_time)
    alone = MessageBus(alone_units, events=handlers.EVENTS)
    for step in batch:
        await alone.handle_event(step)
    for n in range(3):
        workload_id = f"WL-BA7C{n:04d}"
        assert timeline(tables, workload_id) == timeline(one_at_a_time, workload_id) == [
            "training.requested", "workload.queued", "workload.started", "workload.failed"]
        assert tables.requests[workload_id].status == one_at_a_time.requests[workload_id].status == "failed"
    # each outside request accepted once, either way
    assert [e.correlation_id for e in uows.published] == [e.correlation_id for e in alone_units.published] == [
        f"WL-BA7C{n:04d}" for n in range(3)]


def test_every_saga_event_is_handled_under_its_workloads_lock_and_batched_with_the_others():
    assert set(handlers.LOCKS) == set(handlers.TOGETHER) == set(SAGA_EVENTS)
    assert {handlers.EVENTS[event_type] for event_type in SAGA_EVENTS} == {handlers.add_to_timeline}
    assert handlers.LOCKS["workload.queued"](queued("WL-1", 0)) == ("trainer.workload", "WL-1")
