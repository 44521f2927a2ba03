"""The approval service's handlers, through its message bus, over a unit of work without servers."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta

import pytest

from contracts.events import LoopTestCompleted, WorkloadCancelRequested, make_event
from services.approval import commands, handlers
from services.approval.domain import ApprovalRequest, TestRun, Thresholds
from services.approval.settings import ApprovalSettings
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound
from services.kit.messagebus import MessageBus
from services.kit.messaging import PermanentError
from tests.support.fakes import FakeUnitOfWork, FakeUnitOfWorks
from tests.unit.approval.factory import small_spec, workload

CONVERGING = [72.1, 78.5, 82.0, 85.3, 87.9, 89.4, 90.2, 91.0, 91.6, 92.1]


class Store:
    """What the approval tables hold, as copies: a unit that does not commit leaves it as it was."""

    def __init__(self) -> None:
        self.requests: dict[str, ApprovalRequest] = {}
        self.test_runs: dict[str, TestRun] = {}
        self.thresholds = (Thresholds(), "system")


class FakeRequests:
    def __init__(self, uow: "FakeApprovalUnitOfWork") -> None:
        self._uow = uow

    async def get(self, workload_id: str, *, lock: bool = False) -> ApprovalRequest | None:
        found = self._uow.store.requests.get(workload_id)
        return self._uow.track(copy.deepcopy(found)) if found else None

    async def add(self, request: ApprovalRequest) -> bool:
        if request.workload_id in self._uow.store.requests:
            return False
        self._uow.store.requests[request.workload_id] = _copy(request)
        self._uow.track(request)
        return True

    async def save(self, request: ApprovalRequest) -> None:
        self._uow.store.requests[request.workload_id] = _copy(request)


class FakeTestRuns:
    def __init__(self, uow: "FakeApprovalUnitOfWork") -> None:
        self._uow = uow

    async def get(self, test_run_id: str, *, lock: bool = False) -> TestRun | None:
        return copy.deepcopy(self._uow.store.test_runs.get(test_run_id))

    async def add(self, run: TestRun) -> None:
        self._uow.store.test_runs[run.test_run_id] = copy.deepcopy(run)

    save = add

    async def overdue(self, started_before: datetime) -> list[TestRun]:
        return [copy.deepcopy(run) for run in self._uow.store.test_runs.values()
                if run.status == "running" and run.requested_at < started_before]


class FakeThresholds:
    def __init__(self, uow: "FakeApprovalUnitOfWork") -> None:
        self._uow = uow

    async def get(self) -> Thresholds:
        return self._uow.store.thresholds[0]

    async def set(self, limits: Thresholds, by: str) -> None:
        self._uow.store.thresholds = (limits, by)


def _copy(request: ApprovalRequest) -> ApprovalRequest:
    stored = copy.deepcopy(request)
    stored.events = []
    return stored


class FakeApprovalUnitOfWork(FakeUnitOfWork):
    def __init__(self, store: Store, published, *, cause=None) -> None:
        super().__init__(published, cause=cause, state=store)
        self.store = store
        self.requests = FakeRequests(self)
        self.test_runs = FakeTestRuns(self)
        self.thresholds = FakeThresholds(self)



@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def uows(store: Store) -> FakeUnitOfWorks:
    return FakeUnitOfWorks(lambda published, cause=None: FakeApprovalUnitOfWork(store, published, cause=cause))


@pytest.fixture
def bus(uows: FakeUnitOfWorks) -> MessageBus:
    return MessageBus(uows, commands=handlers.COMMANDS, events=handlers.EVENTS,
                      dependencies={"settings": ApprovalSettings()})


def requested(wl):
    return make_event("training.requested", wl, producer="trainer", correlation_id=wl.workload_id)


async def pending_request(bus: MessageBus, uows: FakeUnitOfWorks, **kwargs) -> str:
    wl = workload(**kwargs)
    await bus.handle_event(requested(wl))
    uows.published.clear()
    return wl.workload_id


async def passed_request(bus: MessageBus, store: Store, uows: FakeUnitOfWorks) -> tuple[str, str]:
    workload_id = await pending_request(bus, uows)
    await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="kim", is_admin=False))
    test_run_id = store.requests[workload_id].test_run_id
    await bus.handle_event(make_event("looptest.completed", LoopTestCompleted(
        workload_id=workload_id, test_run_id=test_run_id, mode="rl", rewards=CONVERGING),
        producer="scheduler", correlation_id=workload_id))
    uows.published.clear()
    return workload_id, test_run_id


# ---------------------------------------------------------------------- training.requested

async def test_a_request_below_the_threshold_is_approved_at_once(bus, uows, store):
    wl = workload(small_spec((1, "16GB")))
    await bus.handle_event(requested(wl))
    [approved] = uows.published
    assert approved.type == "workload.approved" and approved.data.auto is True
    assert store.requests[wl.workload_id].status == "approved"


async def test_a_request_above_the_threshold_waits_for_a_loop_test_and_an_admin(bus, uows, store):
    wl = workload()
    await bus.handle_event(requested(wl))
    assert uows.types() == ["approval.required"]
    assert uows.published[0].data.reasons and store.requests[wl.workload_id].status == "pending"


async def test_a_training_request_seen_twice_is_recorded_and_published_once(bus, uows, store):
    wl = workload()
    await bus.handle_event(requested(wl))
    await bus.handle_event(requested(wl))
    assert uows.types() == ["approval.required"]


async def test_a_workload_without_components_is_refused_for_good(bus, uows, store):
    wl = workload(small_spec())
    wl.spec.tasks[0].components.clear()
    with pytest.raises(PermanentError):
        await bus.handle_event(requested(wl))
    assert uows.published == [] and store.requests == {}


async def test_a_passed_test_named_at_submission_makes_the_request_approvable(bus, store, uows):
    _, test_run_id = await passed_request(bus, store, uows)
    again = workload(workload_id="WL-0000AGAIN", test_run_ref=test_run_id)
    await bus.handle_event(requested(again))
    assert uows.types() == ["approval.required", "looptest.passed"]
    assert store.requests["WL-0000AGAIN"].status == "awaiting approval"


async def test_an_unknown_test_named_at_submission_leaves_the_request_pending(bus, uows, store):
    await bus.handle_event(requested(workload(test_run_ref="LT-NOSUCH")))
    assert uows.types() == ["approval.required"] and store.requests["WL-0000TEST"].status == "pending"


# ---------------------------------------------------------------------- the loop test

async def test_running_a_loop_test_stores_the_run_and_asks_for_the_settings_episodes(bus, uows, store):
    workload_id = await pending_request(bus, uows)
    request = await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="kim", is_admin=False))
    [asked] = uows.published
    assert asked.type == "looptest.requested" and asked.data.episodes == ApprovalSettings().loop_test_rl_episodes
    assert store.test_runs[request.test_run_id].status == "running"
    assert store.requests[workload_id].loop_test.status == "running"


async def test_only_the_requester_or_an_admin_may_run_a_loop_test(bus, uows, store):
    workload_id = await pending_request(bus, uows)
    with pytest.raises(Forbidden, match=r"requester \(kim\)"):
        await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="lee", is_admin=False))
    assert uows.published == [] and store.test_runs == {}
    await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="boss", is_admin=True))
    assert uows.types() == ["looptest.requested"]


async def test_an_rl_loop_test_of_fewer_than_three_episodes_is_refused(bus, uows, store):
    workload_id = await pending_request(bus, uows)
    with pytest.raises(Invalid) as refused:
        await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="kim", is_admin=False, episodes=2))
    assert refused.value.code == "too_few_episodes" and uows.published == [] and store.test_runs == {}


async def test_a_loop_test_for_an_unknown_request_is_not_found(bus):
    with pytest.raises(NotFound):
        await bus.handle(commands.RunLoopTest(workload_id="WL-NOSUCH", by="kim", is_admin=False))


async def test_a_converging_result_passes_the_test_and_publishes_it(bus, store, uows):
    workload_id = await pending_request(bus, uows)
    await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="kim", is_admin=False))
    test_run_id = store.requests[workload_id].test_run_id
    completed = make_event("looptest.completed", LoopTestCompleted(
        workload_id=workload_id, test_run_id=test_run_id, mode="rl", rewards=CONVERGING),
        producer="scheduler", correlation_id=workload_id)
    await bus.handle_event(completed)
    assert uows.types() == ["looptest.requested", "looptest.passed"]
    assert uows.published[-1].cause is None and uows.made[-1].cause is completed
    assert store.requests[workload_id].status == "awaiting approval"
    await bus.handle_event(completed)  # a result delivered twice is judged once
    assert uows.types() == ["looptest.requested", "looptest.passed"]


async def test_a_result_for_a_test_run_never_requested_is_refused_for_good(bus, uows):
    workload_id = await pending_request(bus, uows)
    with pytest.raises(PermanentError):
        await bus.handle_event(make_event("looptest.completed", LoopTestCompleted(
            workload_id=workload_id, test_run_id="LT-NOSUCH", mode="rl", rewards=CONVERGING),
            producer="scheduler", correlation_id=workload_id))
    assert uows.published == []


async def test_attaching_a_passed_run_of_the_same_version_makes_the_request_approvable(bus, store, uows):
    _, test_run_id = await passed_request(bus, store, uows)
    other = await pending_request(bus, uows, workload_id="WL-0000OTHER")
    await bus.handle(commands.AttachTestRun(workload_id=other, test_run_id=test_run_id, by="kim", is_admin=False))
    assert uows.types() == ["looptest.passed"] and store.requests[other].status == "awaiting approval"


async def test_attaching_a_run_that_does_not_exist_is_not_found(bus, uows):
    workload_id = await pending_request(bus, uows)
    with pytest.raises(NotFound):
        await bus.handle(commands.AttachTestRun(workload_id=workload_id, test_run_id="LT-NOSUCH", by="kim",
                                                is_admin=False))


async def test_an_overdue_loop_test_fails_and_blocks_approval(bus, store, uows):
    workload_id = await pending_request(bus, uows)
    request = await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="kim", is_admin=False))
    store.test_runs[request.test_run_id].requested_at -= timedelta(hours=2)
    assert await bus.handle(commands.FailOverdueTests(timeout_seconds=3600)) == 1
    assert uows.types()[-1] == "looptest.failed" and store.test_runs[request.test_run_id].status == "failed"
    assert await bus.handle(commands.FailOverdueTests(timeout_seconds=3600)) == 0


async def test_a_loop_test_within_its_time_is_left_running(bus, store, uows):
    workload_id = await pending_request(bus, uows)
    request = await bus.handle(commands.RunLoopTest(workload_id=workload_id, by="kim", is_admin=False))
    assert await bus.handle(commands.FailOverdueTests(timeout_seconds=3600)) == 0
    assert store.test_runs[request.test_run_id].status == "running"


# ---------------------------------------------------------------------- decisions

async def test_approving_before_the_loop_test_passed_is_refused_with_test_required(bus, uows, store):
    workload_id = await pending_request(bus, uows)
    with pytest.raises(Conflict) as refused:
        await bus.handle(commands.ApproveRequest(workload_id=workload_id, by="boss"))
    assert refused.value.message.startswith("테스트 필요") and uows.published == []
    assert store.requests[workload_id].status == "pending"


async def test_approving_after_the_loop_test_passed_publishes_the_approval_once(bus, store, uows):
    workload_id, _ = await passed_request(bus, store, uows)
    await bus.handle(commands.ApproveRequest(workload_id=workload_id, by="boss"))
    await bus.handle(commands.ApproveRequest(workload_id=workload_id, by="boss"))
    [approved] = uows.published
    assert approved.type == "workload.approved" and approved.data.approved_by == "boss" and not approved.data.auto
    assert store.requests[workload_id].decided_by == "boss"


async def test_rejecting_publishes_the_comment_and_ends_the_request(bus, uows, store):
    workload_id = await pending_request(bus, uows)
    await bus.handle(commands.RejectRequest(workload_id=workload_id, by="boss", comment="too large"))
    [rejected] = uows.published
    assert rejected.type == "workload.rejected" and rejected.data.comment == "too large"
    with pytest.raises(Conflict):
        await bus.handle(commands.ApproveRequest(workload_id=workload_id, by="boss"))
    assert store.requests[workload_id].status == "rejected"


async def test_cancelling_an_undecided_request_ends_it_here(bus, uows, store):
    workload_id = await pending_request(bus, uows)
    await bus.handle_event(make_event("workload.cancel_requested", WorkloadCancelRequested(
        workload_id=workload_id, requested_by="kim"), producer="trainer", correlation_id=workload_id))
    assert uows.types() == ["workload.cancelled"] and store.requests[workload_id].status == "cancelled"


async def test_cancelling_an_approved_request_is_left_to_the_scheduler(bus, uows, store):
    wl = workload(small_spec((1, "16GB")))
    await bus.handle_event(requested(wl))
    uows.published.clear()
    await bus.handle_event(make_event("workload.cancel_requested", WorkloadCancelRequested(
        workload_id=wl.workload_id, requested_by="kim"), producer="trainer", correlation_id=wl.workload_id))
    assert uows.published == [] and store.requests[wl.workload_id].status == "approved"


async def test_new_thresholds_decide_the_requests_received_after_them(bus, uows, store):
    await bus.handle(commands.SetThresholds(gpu_count=64, memory="4TB", by="boss"))
    assert store.thresholds == (Thresholds(gpu_count=64, memory="4TB"), "boss")
    await bus.handle_event(requested(workload()))
    assert uows.types() == ["workload.approved"]
