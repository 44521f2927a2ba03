"""The models service's handlers, server-free: a fake unit of work over in-memory repositories."""
from __future__ import annotations

import pytest

from datetime import datetime, timedelta, timezone

from contracts.events import AppOwnerChanged, AppSpecCreated, ComponentArtifacts, make_event
from services.kit.errors import Conflict, Forbidden, NotFound
from services.kit.messagebus import MessageBus
from services.kit.messaging import PermanentError
from services.models import handlers, metrics
from services.models.commands import MarkModelStored, MoveAlias, RecordStoreFailure, RollBackAlias
from services.models.domain import Gate, Model
from services.models.store import NOTIFY_CHANNEL
from tests.integration.models.helpers import completed_event, workload
from tests.unit.models.fakes import State, unit_of_works

APP = "APP-1"
OWNER = "replica-1"


@pytest.fixture
def state() -> State:
    return State()


@pytest.fixture
def uows(state):
    return unit_of_works(state)


@pytest.fixture
def bus(uows) -> MessageBus:
    return MessageBus(uows, commands=handlers.COMMANDS, events=handlers.EVENTS)


def artifact(component_id: str = "C-agent", name: str = "rl-agent", prefix: str | None = None,
             metrics: dict | None = None) -> ComponentArtifacts:
    return ComponentArtifacts(task_id="T-1", component_id=component_id, name=name,
                              prefix=prefix or f"s3://avatar-staging/WL/{component_id}/",
                              log=f"s3://avatar-logs/logs/WL/{component_id}.log", metrics=metrics or {})


def completion(workload_id: str, *artifacts: ComponentArtifacts, app_id: str = APP):
    return completed_event(workload(app_id, workload_id), list(artifacts or [artifact()]))


def leased(state: State, model_id: str = "MDL-00000001", *, app_id: str = APP, version: int = 1,
           files: dict[str, int] | None = None, **fields) -> Model:
    """A pending model `OWNER` is storing, with `files` ({path: size}) verified so far."""
    model = Model(model_id, f"WL-{model_id}", app_id, version, [], **fields)
    for path, size in (files or {}).items():
        model.file_verified(path, f"s3://avatar-staging/{path}", size)
    state.models[model_id] = model
    state.leases[model_id] = OWNER
    return model


def stored(state: State, model_id: str, *, app_id: str = APP, version: int = 1, **metrics: float) -> str:
    state.models[model_id] = Model(model_id, f"WL-{model_id}", app_id, version, [], status="stored")
    state.metrics[model_id] = {"summary": metrics, "components": {}}
    return model_id


# ---------------------------------------------------------------------- workload.completed

async def test_a_completed_workload_is_recorded_as_a_pending_model_under_the_apps_next_version(bus, state, uows):
    await bus.handle_event(completion("WL-1", artifact(metrics={"final_reward": 7.0})))
    await bus.handle_event(completion("WL-2"))

    models = sorted(state.models.values(), key=lambda m: m.version)
    assert [(m.workload_id, m.version, m.status) for m in models] == [("WL-1", 1, "pending"), ("WL-2", 2, "pending")]
    first = state.added[models[0].model_id]
    assert first.name_prefix == "rl-designopt-v" and first.app_name == "RL DesignOpt"
    assert [a.folder for a in first.artifacts] == ["rl-agent"]
    assert first.metrics["summary"] == {"final_reward": 7.0}
    assert first.workload["workloadId"] == "WL-1"
    assert uows.published == []  # the model is announced once it is stored


async def test_recording_a_completed_workload_wakes_a_store_worker_once_it_commits(bus, uows):
    await bus.handle_event(completion("WL-1"))

    assert uows.woken() == [NOTIFY_CHANNEL]
    assert [uow.commits for uow in uows.made] == [1]


async def test_a_completion_republished_under_a_new_event_id_records_no_second_model_and_wakes_nobody(
        bus, state, uows):
    await bus.handle_event(completion("WL-1"))
    await bus.handle_event(completion("WL-1"))

    assert [m.workload_id for m in state.models.values()] == ["WL-1"]
    assert uows.woken() == [NOTIFY_CHANNEL]


async def test_components_of_one_name_get_folders_told_apart_by_their_ids(bus, state):
    await bus.handle_event(completion("WL-1", artifact("C-1", "agent"), artifact("C-2", "agent")))

    [model] = state.models.values()
    assert [a.folder for a in model.artifacts] == ["agent-c-1", "agent-c-2"]


async def test_a_completion_carrying_another_workload_is_dead_lettered(bus, state, uows):
    event = completion("WL-1")
    event.data.workload_id = "WL-other"

    with pytest.raises(PermanentError, match="carries workload WL-1"):
        await bus.handle_event(event)
    assert state.models == {} and uows.woken() == []


async def test_a_completion_listing_an_artifact_outside_the_object_store_is_dead_lettered(bus, state):
    with pytest.raises(PermanentError, match="unusable artifact location"):
        await bus.handle_event(completion("WL-1", artifact(prefix="ftp://host/outputs/")))
    assert state.models == {}


# ---------------------------------------------------------------------- the store worker

async def test_marking_a_leased_model_stored_publishes_model_stored_with_the_totals_of_its_files(bus, state, uows):
    leased(state, files={"rl-agent/policy.npz": 300, "rl-agent/metrics.json": 2}, attempts=2,
           last_error="S3 away", outage_reported=True)

    model = await bus.handle(MarkModelStored("MDL-00000001", OWNER))

    [event] = uows.published
    assert event.type == "model.stored" and event.correlation_id == "WL-MDL-00000001"
    assert event.data.model_dump() == {"workload_id": "WL-MDL-00000001", "model_id": "MDL-00000001",
                                       "app_id": APP, "version": 1, "size_bytes": 302, "files": 2}
    saved = state.models["MDL-00000001"]
    assert saved.status == "stored" and (saved.size_bytes, saved.file_count) == (302, 2)
    assert saved.last_error is None and not saved.outage_reported  # the outage is over
    assert "MDL-00000001" not in state.leases
    assert model.status == "stored"


async def test_a_model_whose_lease_went_to_another_replica_is_not_marked_stored_nor_announced(bus, state, uows):
    leased(state)
    state.leases["MDL-00000001"] = "replica-2"

    assert await bus.handle(MarkModelStored("MDL-00000001", OWNER)) is None
    assert uows.published == [] and state.models["MDL-00000001"].status == "pending"


async def test_the_first_failed_attempt_of_an_outage_publishes_model_store_failed_and_schedules_a_retry(
        bus, state, uows):
    leased(state)

    await bus.handle(RecordStoreFailure("MDL-00000001", OWNER, "ConnectionError: refused", retry_in=2.0))

    [event] = uows.published
    assert event.type == "model.store_failed"
    assert event.data.model_dump() == {"workload_id": "WL-MDL-00000001", "reason": "ConnectionError: refused",
                                       "attempt": 1, "will_retry": True}
    saved = state.models["MDL-00000001"]
    assert (saved.status, saved.attempts, saved.last_error, saved.retry_in) == (
        "pending", 1, "ConnectionError: refused", 2.0)
    assert "MDL-00000001" not in state.leases  # handed back until the retry is due


async def test_later_failures_of_the_same_outage_are_counted_but_announced_once(bus, state, uows):
    leased(state)
    for n in range(3):
        state.leases["MDL-00000001"] = OWNER  # the worker leases it again for each attempt
        await bus.handle(RecordStoreFailure("MDL-00000001", OWNER, f"attempt {n}", retry_in=1.0))

    assert uows.types() == ["model.store_failed"]
    assert state.models["MDL-00000001"].attempts == 3
    assert state.models["MDL-00000001"].last_error == "attempt 2"


async def test_a_failure_reported_after_losing_the_lease_changes_nothing(bus, state, uows):
    leased(state)
    del state.leases["MDL-00000001"]

    assert await bus.handle(RecordStoreFailure("MDL-00000001", OWNER, "late", retry_in=1.0)) is None
    assert uows.published == [] and state.models["MDL-00000001"].attempts == 0


# ---------------------------------------------------------------------- aliases

APP_OWNER = "kim"


def spec_created(app_id: str = APP, owner: str | None = APP_OWNER, occurred_at: datetime | None = None):
    """The builder generated the App's spec while `owner` owned it."""
    event = make_event("app.spec_created", AppSpecCreated(app_id=app_id, version="1.0.0", owner=owner,
                                                          spec=workload(app_id, "WL-spec").spec),
                       producer="builder", correlation_id=app_id)
    return event.model_copy(update={"occurred_at": occurred_at}) if occurred_at else event


def owner_changed(owner: str, previous: str | None, app_id: str = APP, occurred_at: datetime | None = None):
    event = make_event("app.owner_changed", AppOwnerChanged(app_id=app_id, owner=owner, previous=previous,
                                                            changed_by="root"),
                       producer="builder", correlation_id=app_id)
    return event.model_copy(update={"occurred_at": occurred_at}) if occurred_at else event


@pytest.fixture
async def owned(bus):
    """APP belongs to kim, as the builder announced when it generated the App's spec."""
    await bus.handle_event(spec_created())


def move(model_id: str, alias: str = "production", *, by: str = APP_OWNER, role: str = "researcher",
         app_id: str = APP, **options) -> MoveAlias:
    return MoveAlias(app_id=app_id, alias=alias, model_id=model_id, by=by, role=role, **options)


def rollback(alias: str = "production", *, by: str = APP_OWNER, role: str = "researcher",
             app_id: str = APP) -> RollBackAlias:
    return RollBackAlias(app_id=app_id, alias=alias, by=by, role=role)


async def test_moving_an_alias_to_a_stored_model_publishes_alias_moved_with_its_number_in_the_history(
        owned, bus, state, uows):
    v1, v2 = stored(state, "MDL-1", version=1), stored(state, "MDL-2", version=2)
    await bus.handle(move(v1))

    change = await bus.handle(move(v2))

    assert (change.model_id, change.previous_model_id, change.version, change.changed) == (v2, v1, 2, True)
    first, second = uows.published
    assert second.type == "model.alias_moved" and second.correlation_id == APP
    assert second.data.model_dump() == {"app_id": APP, "alias": "production", "model_id": v2, "version": 2,
                                        "previous_model_id": v1, "action": "move", "moved_by": "kim",
                                        "sequence": second.data.sequence}
    assert second.data.sequence > first.data.sequence
    assert state.aliases[(APP, "production")] == v2
    assert state.history(APP, "production") == [("move", None, v1, False), ("move", v1, v2, False)]


async def test_moving_an_alias_where_it_already_points_publishes_nothing_and_adds_no_history(owned, bus, state, uows):
    v1 = stored(state, "MDL-1")
    await bus.handle(move(v1))

    change = await bus.handle(move(v1))

    assert not change.changed and change.previous_model_id == v1
    assert uows.types() == ["model.alias_moved"]
    assert len(state.history(APP, "production")) == 1


async def test_moving_an_alias_to_an_unknown_model_is_not_found(owned, bus, uows):
    with pytest.raises(NotFound, match="model MDL-x not found"):
        await bus.handle(move("MDL-x"))
    assert uows.published == []


@pytest.mark.parametrize("code", ["other_app", "not_stored", "alias_moved"])
async def test_a_move_the_alias_may_not_make_is_refused_and_leaves_the_alias_where_it_was(owned, bus, state, uows,
                                                                                           code):
    current = stored(state, "MDL-1")
    await bus.handle(move(current))
    candidate = {"other_app": stored(state, "MDL-9", app_id="APP-other"),
                 "not_stored": leased(state, "MDL-2", version=2).model_id,
                 "alias_moved": stored(state, "MDL-3", version=3)}[code]
    expected = {"expected_model_id": "MDL-elsewhere"} if code == "alias_moved" else {}

    with pytest.raises(Conflict) as refused:
        await bus.handle(move(candidate, **expected))

    assert refused.value.code == code
    assert state.aliases[(APP, "production")] == current and len(uows.published) == 1


async def test_a_stale_move_names_where_the_alias_points_now(owned, bus, state):
    with pytest.raises(Conflict) as refused:
        await bus.handle(move(stored(state, "MDL-1"), expected_model_id="MDL-0"))
    assert refused.value.extra == {"current_model_id": None}
    assert "points at nothing, not MDL-0" in refused.value.message


async def test_a_gate_the_model_fails_refuses_the_move_and_counts_it_refused(owned, bus, state, uows):
    good, weak = stored(state, "MDL-1", final_reward=80.0), stored(state, "MDL-2", version=2, final_reward=12.5)
    await bus.handle(move(good))
    refused_before = metrics.ALIAS_MOVES.labels("move", "refused")._value.get()

    with pytest.raises(Conflict) as refused:
        await bus.handle(move(weak, gate=Gate(metric="final_reward", min=50)))

    assert refused.value.code == "gate_failed" and refused.value.extra["observed"] == 12.5
    assert refused.value.message.endswith("alias production still points at MDL-1")
    assert metrics.ALIAS_MOVES.labels("move", "refused")._value.get() == refused_before + 1
    assert state.aliases[(APP, "production")] == good and uows.types() == ["model.alias_moved"]


async def test_a_gate_the_model_meets_moves_the_alias_and_keeps_the_gate_and_observed_value(owned, bus, state):
    model = stored(state, "MDL-1", final_reward=80.0)

    change = await bus.handle(move(model, gate=Gate(metric="final_reward", min=50)))

    assert change.gate_observed == 80.0
    [kept] = state.moves
    assert kept.move.gate == {"metric": "final_reward", "min": 50.0, "max": None} and kept.move.gate_observed == 80.0


async def test_rolling_back_returns_the_alias_to_the_model_before_its_newest_move_and_publishes_it(
        owned, bus, state, uows):
    v1, v2 = stored(state, "MDL-1", version=1), stored(state, "MDL-2", version=2)
    await bus.handle(move(v1))
    await bus.handle(move(v2))

    change = await bus.handle(rollback(by="root", role="admin"))

    assert (change.model_id, change.previous_model_id, change.action, change.version) == (v1, v2, "rollback", 1)
    event = uows.published[-1]
    assert event.type == "model.alias_moved" and event.data.action == "rollback" and event.data.moved_by == "root"
    assert event.data.sequence > uows.published[-2].data.sequence
    assert state.aliases[(APP, "production")] == v1
    assert state.history(APP, "production") == [("move", None, v1, False), ("move", v1, v2, True),
                                                ("rollback", v2, v1, False)]


async def test_repeated_rollbacks_walk_back_through_the_history_until_nothing_is_left(owned, bus, state):
    v1, v2, v3 = (stored(state, f"MDL-{n}", version=n) for n in (1, 2, 3))
    for model in (v1, v2, v3):
        await bus.handle(move(model))
    back = rollback()

    assert [(await bus.handle(back)).model_id for _ in range(2)] == [v2, v1]
    with pytest.raises(Conflict) as nothing:
        await bus.handle(back)
    assert nothing.value.code == "nothing_to_roll_back" and "no earlier model" in nothing.value.message
    assert state.aliases[(APP, "production")] == v1


async def test_rolling_back_an_alias_that_does_not_exist_is_not_found(owned, bus, uows):
    with pytest.raises(NotFound, match="alias staging of app APP-1 not found"):
        await bus.handle(rollback("staging"))
    assert uows.published == []


# ---------------------------------------------------------------------- who may move an App's aliases

async def test_another_researcher_may_not_move_nor_roll_back_the_apps_aliases_and_the_refusal_names_the_owner(
        owned, bus, state, uows):
    v1, v2 = stored(state, "MDL-1", version=1), stored(state, "MDL-2", version=2)
    await bus.handle(move(v1))
    await bus.handle(move(v2))
    published, history = list(uows.published), state.history(APP, "production")

    for refused in (move(v1, by="lee"), rollback(by="lee")):
        with pytest.raises(Forbidden) as forbidden:
            await bus.handle(refused)
        assert forbidden.value.message == f"app {APP} belongs to 'kim'; only its owner or an admin may change it"

    assert state.aliases[(APP, "production")] == v2 and state.history(APP, "production") == history
    assert uows.published == published and uows.audited[-1].data.actor == "kim"


async def test_an_admin_moves_and_rolls_back_any_apps_aliases(owned, bus, state):
    v1, v2 = stored(state, "MDL-1", version=1), stored(state, "MDL-2", version=2)
    await bus.handle(move(v1))

    assert (await bus.handle(move(v2, by="root", role="admin"))).moved_by == "root"
    assert (await bus.handle(rollback(by="root", role="admin"))).model_id == v1


@pytest.mark.parametrize("announced", [False, True], ids=["not-heard-of", "the-platforms"])
async def test_an_app_whose_owner_is_unknown_has_its_aliases_moved_by_an_admin_only(bus, state, uows, announced):
    if announced:  # the builder says it is the platform's (no owner)
        await bus.handle_event(spec_created(owner=None))
    v1 = stored(state, "MDL-1")

    with pytest.raises(Forbidden, match=f"app {APP} belongs to the platform \\(no owner\\); only an admin"):
        await bus.handle(move(v1))
    assert (APP, "production") not in state.aliases and uows.published == []

    await bus.handle(move(v1, by="root", role="admin"))
    with pytest.raises(Forbidden, match="belongs to the platform"):
        await bus.handle(rollback())
    assert state.aliases[(APP, "production")] == v1


async def test_after_a_transfer_the_new_owner_moves_the_aliases_and_the_old_one_may_not(owned, bus, state):
    v1, v2 = stored(state, "MDL-1", version=1), stored(state, "MDL-2", version=2)
    await bus.handle(move(v1))

    await bus.handle_event(owner_changed("lee", previous="kim"))

    with pytest.raises(Forbidden, match=f"app {APP} belongs to 'lee'"):
        await bus.handle(move(v2))
    with pytest.raises(Forbidden, match="belongs to 'lee'"):
        await bus.handle(rollback())
    assert (await bus.handle(move(v2, by="lee"))).changed
    assert (await bus.handle(rollback(by="lee"))).model_id == v1


async def test_a_late_older_owner_event_does_not_overwrite_a_newer_one(bus, state):
    now = datetime.now(timezone.utc)
    await bus.handle_event(owner_changed("lee", previous="kim", occurred_at=now))
    await bus.handle_event(spec_created(owner="kim", occurred_at=now - timedelta(seconds=5)))  # arrived late
    assert state.owners[APP][0] == "lee"

    await bus.handle_event(spec_created(owner="lee", occurred_at=now + timedelta(seconds=5)))
    await bus.handle_event(owner_changed("ana", previous="lee", occurred_at=now + timedelta(seconds=9)))
    assert state.owners[APP][0] == "ana"


def test_every_command_and_event_of_the_service_has_a_handler():
    assert set(handlers.COMMANDS) == {MoveAlias, RollBackAlias, MarkModelStored, RecordStoreFailure}
    assert set(handlers.EVENTS) == {"workload.completed", "app.spec_created", "app.owner_changed"}
    assert set(handlers.LOCKS) == {"workload.completed"}
