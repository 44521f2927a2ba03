"""The Builder's handlers through its message bus, on an in-memory unit of work (no servers)."""
from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from contracts.events import ComponentChanged, ComponentSnapshot, make_event
from contracts.resources import Resources
from contracts.spec import ImageRef, Storage
from services.builder import domain, handlers
from services.builder.commands import (AddTask, ChangeApp, ChangeComponent, ConnectComponents, CreateApp, DeleteApp,
                                       DeleteTask, DisconnectComponents, GenerateSpec, ImportApp, PlaceComponent,
                                       RemoveComponent, RemoveImport, RenameTask, ReorderComponents, TransferApp,
                                       UpgradeComponent)
from services.builder.domain import Threshold
from services.builder.workflow import WorkflowRejected
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from services.kit.messagebus import MessageBus
from tests.unit.builder.fakes import BuilderState, FakeLibrary, unit_of_works

USER = "kim"


def snapshot(cid: str, *, gpus: int = 1, version: str = "1.0.0", tag: str = "1.0") -> ComponentSnapshot:
    return ComponentSnapshot(component_id=cid, name=cid.lower(), version=version, type="trainer",
                             image=ImageRef(registry=f"registry.avatar.io/{cid.lower()}", tag=tag),
                             resources=Resources(gpu_type="A100", gpu_count=gpus, memory="16GB"),
                             params={"lr": 0.1})


class Builder:
    """The bus over fakes, with short verbs for the state a test starts from."""

    def __init__(self, *library: ComponentSnapshot, down: bool = False) -> None:
        self.state = BuilderState()
        self.uows = unit_of_works(self.state)
        self.library = FakeLibrary(*library, down=down)
        self.bus = MessageBus(self.uows, commands=handlers.COMMANDS, events=handlers.EVENTS,
                              dependencies={"library": self.library, "threshold": Threshold()})

    async def handle(self, command):
        return await self.bus.handle(command)

    async def app(self, name: str = "RL-DesignOpt-v1") -> str:
        return await self.handle(CreateApp(name=name, version="1.0.0", user=USER))

    async def task(self, app_id: str, *component_ids: str, edges=()) -> str:
        task_id = (await self.handle(AddTask(app_id=app_id, name="optimise", user=USER))).task_id
        for cid in component_ids:
            await self.handle(PlaceComponent(app_id=app_id, task_id=task_id, component_id=cid, user=USER))
        for source, target in edges:
            await self.handle(ConnectComponents(app_id=app_id, task_id=task_id, source=source, target=target,
                                                user=USER))
        return task_id

    async def imported(self) -> tuple[str, str]:
        """A source App with one Task of CL-A, imported into a new target App; answers (source, target)."""
        source = await self.app("source")
        await self.task(source, "CL-A")
        target = await self.app("target")
        await self.handle(ImportApp(app_id=target, app_ref=source, user=USER))
        return source, target

    def stored(self, app_id: str):
        return self.state.apps[app_id]

    def stored_task(self, app_id: str, task_id: str):
        return self.state.task(app_id, task_id)

    def revision(self, app_id: str) -> int:
        return self.state.apps[app_id].info.revision

    def published(self) -> list[str]:
        return self.uows.types()


# ---------------------------------------------------------------- apps

async def test_creating_an_app_stores_a_draft_whose_storage_follows_its_name():
    builder = Builder()
    app_id = await builder.app("RL Design/Opt v1")
    info = builder.stored(app_id).info
    assert (info.status, info.created_by) == ("draft", USER)
    assert info.storage == Storage(type="distributed", path="/training-data/rl-design-opt-v1")
    assert builder.published() == []


async def test_creating_an_app_draws_another_id_while_the_drawn_one_is_taken(monkeypatch):
    builder = Builder()
    builder.state.specs["APP-AAAAAA"] = []  # a deleted App's spec versions keep its id taken
    drawn = iter(["APP-AAAAAA", "APP-BBBBBB"])
    monkeypatch.setattr(domain, "new_app_id", lambda: next(drawn))
    assert await builder.app() == "APP-BBBBBB"


async def test_changing_an_app_with_null_clears_only_the_test_run_reference():
    builder = Builder()
    app_id = await builder.app()
    await builder.handle(ChangeApp(app_id=app_id, user=USER, changes={"test_run_ref": "RUN-1", "description": "first"}))
    await builder.handle(ChangeApp(app_id=app_id, user="lee", is_admin=True,
                                   changes={"test_run_ref": None, "description": None, "name": "renamed"}))
    info = builder.stored(app_id).info
    assert (info.test_run_ref, info.description, info.name) == (None, "first", "renamed")
    assert (info.revision, info.updated_by) == (3, "lee")


async def test_changing_an_unknown_app_is_not_found():
    with pytest.raises(NotFound):
        await Builder().handle(ChangeApp(app_id="APP-000000", user=USER, changes={"name": "x"}))


async def test_deleting_an_app_removes_it_and_publishes_app_deleted_about_it():
    builder = Builder()
    app_id = await builder.app()
    await builder.handle(DeleteApp(app_id=app_id, user=USER))
    assert app_id not in builder.state.apps
    [event] = builder.uows.published
    assert (event.type, event.correlation_id, event.data.deleted_by) == ("app.deleted", app_id, USER)


async def test_deleting_an_unknown_app_is_not_found_and_publishes_nothing():
    builder = Builder()
    with pytest.raises(NotFound):
        await builder.handle(DeleteApp(app_id="APP-000000", user=USER))
    assert builder.published() == []


async def test_importing_an_app_copies_its_tasks_marked_with_where_they_came_from():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    source = await builder.app("source")
    await builder.task(source, "CL-A", "CL-B", edges=[("CL-A", "CL-B")])
    target = await builder.app("target")
    await builder.task(target)
    revision = builder.revision(target)

    await builder.handle(ImportApp(app_id=target, app_ref=source, user=USER))

    app = builder.stored(target)
    copied = app.tasks[1]
    assert (copied.task_id, copied.imported_from, copied.order, copied.workflow) == (
        "TASK-002", source, ["CL-A", "CL-B"], [("CL-A", "CL-B")])
    assert [i.app_ref for i in app.imported_apps] == [source]
    assert builder.revision(target) == revision + 1
    assert builder.uows.made[-1].apps.locked == sorted([source, target])


async def test_importing_an_unknown_app_is_refused_as_invalid():
    builder = Builder()
    target = await builder.app()
    with pytest.raises(Invalid) as refused:
        await builder.handle(ImportApp(app_id=target, app_ref="APP-000000", user=USER))
    assert refused.value.code == "unknown_app"


async def test_importing_an_app_twice_is_a_conflict_and_copies_nothing_more():
    builder = Builder(snapshot("CL-A"))
    source, target = await builder.imported()
    with pytest.raises(Conflict):
        await builder.handle(ImportApp(app_id=target, app_ref=source, user=USER))
    assert len(builder.stored(target).tasks) == 1


async def test_removing_an_import_drops_every_task_it_brought():
    builder = Builder(snapshot("CL-A"))
    source, target = await builder.imported()
    own = await builder.task(target)

    await builder.handle(RemoveImport(app_id=target, app_ref=source, user=USER))

    app = builder.stored(target)
    assert ([t.task_id for t in app.tasks], app.imported_apps) == ([own], [])


async def test_removing_an_import_that_is_not_there_is_not_found_and_leaves_the_revision():
    builder = Builder()
    app_id = await builder.app()
    with pytest.raises(NotFound):
        await builder.handle(RemoveImport(app_id=app_id, app_ref="APP-000000", user=USER))
    assert builder.revision(app_id) == 1


async def test_generating_a_spec_makes_the_app_ready_and_publishes_app_spec_created_with_the_spec():
    builder = Builder(snapshot("CL-A", gpus=8))
    app_id = await builder.app()
    await builder.task(app_id, "CL-A")

    answer = await builder.handle(GenerateSpec(app_id=app_id, user=USER))

    assert answer.created and answer.spec["version"] == "1.0.0"
    assert builder.stored(app_id).info.status == "ready"
    [stored] = builder.state.specs[app_id]
    assert (stored.created_by, stored.summary.needs_approval) == (USER, True)  # 8 GPUs: over the threshold
    [event] = builder.uows.published
    assert (event.type, event.correlation_id, event.data.version) == ("app.spec_created", app_id, "1.0.0")
    assert event.data.spec.to_wire() == answer.spec
    assert event.data.owner == USER  # who may move the App's model aliases (the models service keeps it)


async def test_generating_a_spec_again_without_changes_answers_the_latest_and_publishes_nothing_more():
    builder = Builder(snapshot("CL-A"))
    app_id = await builder.app()
    await builder.task(app_id, "CL-A")
    first = await builder.handle(GenerateSpec(app_id=app_id, user=USER))

    again = await builder.handle(GenerateSpec(app_id=app_id, user=USER))

    assert (again.created, again.spec) == (False, first.spec)
    assert builder.published() == ["app.spec_created"]
    assert len(builder.state.specs[app_id]) == 1


async def test_a_spec_after_a_change_takes_the_next_free_patch_version():
    builder = Builder(snapshot("CL-A"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A")
    await builder.handle(GenerateSpec(app_id=app_id, user=USER))
    await builder.handle(RenameTask(app_id=app_id, task_id=task_id, name="renamed", user=USER))
    await builder.handle(ChangeApp(app_id=app_id, user=USER, changes={"version": "1.0.0"}))

    answer = await builder.handle(GenerateSpec(app_id=app_id, user=USER))

    assert (answer.created, answer.spec["version"]) == (True, "1.0.1")
    assert builder.stored(app_id).info.version == "1.0.1"


async def test_an_app_that_cannot_run_gets_no_spec_and_stays_a_draft():
    builder = Builder()
    app_id = await builder.app()
    await builder.task(app_id)  # a Task without components
    with pytest.raises(Invalid) as refused:
        await builder.handle(GenerateSpec(app_id=app_id, user=USER))
    assert refused.value.code == "app_not_ready"
    assert (builder.stored(app_id).info.status, builder.state.specs, builder.published()) == ("draft", {}, [])


# ---------------------------------------------------------------- tasks

async def test_a_new_task_is_numbered_after_every_task_the_app_ever_had():
    builder = Builder()
    app_id = await builder.app()
    first = await builder.task(app_id)
    await builder.handle(DeleteTask(app_id=app_id, task_id=first, user=USER))
    task = await builder.handle(AddTask(app_id=app_id, name="second", user=USER))
    assert (first, task.task_id) == ("TASK-001", "TASK-002")
    assert [t.name for t in builder.stored(app_id).tasks] == ["second"]


async def test_an_app_with_the_most_tasks_takes_no_more(monkeypatch):
    monkeypatch.setattr(domain, "MAX_TASKS", 1)
    builder = Builder()
    app_id = await builder.app()
    await builder.task(app_id)
    with pytest.raises(Invalid) as refused:
        await builder.handle(AddTask(app_id=app_id, name="one too many", user=USER))
    assert refused.value.code == "too_many_tasks"
    assert len(builder.stored(app_id).tasks) == 1


async def test_renaming_a_task_stores_the_name_and_moves_the_revision():
    builder = Builder()
    app_id = await builder.app()
    task_id = await builder.task(app_id)
    revision = builder.revision(app_id)
    task = await builder.handle(RenameTask(app_id=app_id, task_id=task_id, name="renamed", user=USER))
    assert task.name == builder.stored_task(app_id, task_id).name == "renamed"
    assert builder.revision(app_id) == revision + 1


async def test_renaming_an_unknown_task_is_not_found_and_leaves_the_revision():
    builder = Builder()
    app_id = await builder.app()
    with pytest.raises(NotFound):
        await builder.handle(RenameTask(app_id=app_id, task_id="TASK-404", name="x", user=USER))
    assert builder.revision(app_id) == 1


async def test_deleting_the_last_task_an_import_brought_forgets_the_import():
    builder = Builder(snapshot("CL-A"))
    _, target = await builder.imported()
    await builder.handle(DeleteTask(app_id=target, task_id="TASK-001", user=USER))
    assert (builder.stored(target).tasks, builder.stored(target).imported_apps) == ([], [])


async def test_placing_a_component_the_read_model_knows_asks_the_library_nothing():
    builder = Builder()
    builder.state.library["CL-A"] = (snapshot("CL-A"), datetime.now(timezone.utc))
    app_id = await builder.app()
    task_id = await builder.task(app_id)

    task = await builder.handle(PlaceComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER,
                                               params={"epochs": 3}))

    assert builder.library.asked == []
    [placed] = builder.stored_task(app_id, task_id).components
    assert (placed.library_version, placed.params) == ("1.0.0", {"lr": 0.1, "epochs": 3})
    assert task.order == ["CL-A"]


async def test_placing_a_component_new_to_the_read_model_asks_the_library_with_the_callers_token_and_remembers_it():
    builder = Builder(snapshot("CL-A", gpus=2))
    app_id = await builder.app()
    task_id = await builder.task(app_id)

    await builder.handle(PlaceComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER,
                                        authorization="Bearer t", resources={"gpu_count": 4}))

    assert builder.library.asked == [("CL-A", "Bearer t")]
    assert builder.state.library["CL-A"][0] == snapshot("CL-A", gpus=2)
    [placed] = builder.stored_task(app_id, task_id).components
    assert (placed.resources.gpu_count, placed.resources.memory) == (4, "16GB")


async def test_placing_into_an_unknown_task_is_not_found_before_the_library_is_asked():
    builder = Builder(down=True)
    app_id = await builder.app()
    with pytest.raises(NotFound):
        await builder.handle(PlaceComponent(app_id=app_id, task_id="TASK-404", component_id="CL-A", user=USER))
    assert builder.library.asked == []


async def test_placing_while_the_library_is_down_is_unavailable_and_places_nothing():
    builder = Builder(down=True)
    app_id = await builder.app()
    task_id = await builder.task(app_id)
    with pytest.raises(Unavailable):
        await builder.handle(PlaceComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER))
    assert builder.stored_task(app_id, task_id).components == []
    assert builder.revision(app_id) == 2  # only the Task's creation moved it


async def test_placing_a_component_twice_in_a_task_is_a_conflict_and_stores_it_once():
    builder = Builder(snapshot("CL-A"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A")
    with pytest.raises(Conflict):
        await builder.handle(PlaceComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER))
    assert builder.stored_task(app_id, task_id).order == ["CL-A"]


async def test_changing_a_placed_component_changes_only_the_given_resources_and_replaces_its_params():
    builder = Builder(snapshot("CL-A"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A")

    await builder.handle(ChangeComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER,
                                         resources={"memory": "32GB"}, params={"batch": 8},
                                         image=ImageRef(registry="r.io/new", tag="2")))

    [stored] = builder.stored_task(app_id, task_id).components
    assert (stored.name, stored.resources.gpu_count, stored.resources.memory) == ("cl-a", 1, "32GB")
    assert (stored.params, stored.image.tag) == ({"batch": 8}, "2")


async def test_removing_a_component_drops_its_edges_and_closes_the_order():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"), snapshot("CL-C"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B", "CL-C", edges=[("CL-A", "CL-B"), ("CL-B", "CL-C")])

    await builder.handle(RemoveComponent(app_id=app_id, task_id=task_id, component_id="CL-B", user=USER))

    stored = builder.stored_task(app_id, task_id)
    assert (stored.order, stored.workflow) == (["CL-A", "CL-C"], [])


async def test_connecting_against_the_order_moves_the_order_to_follow_the_edge():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B")

    await builder.handle(ConnectComponents(app_id=app_id, task_id=task_id, source="CL-B", target="CL-A", user=USER))

    stored = builder.stored_task(app_id, task_id)
    assert (stored.order, stored.workflow) == (["CL-B", "CL-A"], [("CL-B", "CL-A")])


async def test_a_connection_closing_a_cycle_is_refused_and_not_stored():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B", edges=[("CL-A", "CL-B")])
    revision = builder.revision(app_id)
    with pytest.raises(WorkflowRejected) as refused:
        await builder.handle(ConnectComponents(app_id=app_id, task_id=task_id, source="CL-B", target="CL-A", user=USER))
    assert refused.value.code == "cycle"
    assert builder.stored_task(app_id, task_id).workflow == [("CL-A", "CL-B")]
    assert builder.revision(app_id) == revision


async def test_disconnecting_removes_the_edge():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B", edges=[("CL-A", "CL-B")])
    await builder.handle(DisconnectComponents(app_id=app_id, task_id=task_id, source="CL-A", target="CL-B", user=USER))
    assert builder.stored_task(app_id, task_id).workflow == []


async def test_reordering_stores_the_order_given():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B")
    await builder.handle(ReorderComponents(app_id=app_id, task_id=task_id, order=["CL-B", "CL-A"], user=USER))
    assert builder.stored_task(app_id, task_id).order == ["CL-B", "CL-A"]


async def test_an_order_against_an_edge_is_refused_and_the_stored_order_stays():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B", edges=[("CL-A", "CL-B")])
    with pytest.raises(Invalid) as refused:
        await builder.handle(ReorderComponents(app_id=app_id, task_id=task_id, order=["CL-B", "CL-A"], user=USER))
    assert refused.value.code == "order_conflicts_workflow"
    assert builder.stored_task(app_id, task_id).order == ["CL-A", "CL-B"]


# ---------------------------------------------------------------- ownership

STRANGER = "lee"


def edits_by(user: str, app_id: str, task_id: str, *, is_admin: bool = False):
    """Every change of an App, its Tasks and its placed components, made by `user`."""
    who = {"app_id": app_id, "user": user, "is_admin": is_admin}
    return [ChangeApp(**who, changes={"name": "taken"}), ChangeApp(**who, changes={"env_vars": {"A": "1"}}),
            GenerateSpec(**who), AddTask(**who, name="mine now"), RenameTask(**who, task_id=task_id, name="mine"),
            PlaceComponent(**who, task_id=task_id, component_id="CL-C"),
            ChangeComponent(**who, task_id=task_id, component_id="CL-A", params={"lr": 9}),
            UpgradeComponent(**who, task_id=task_id, component_id="CL-A"),
            DisconnectComponents(**who, task_id=task_id, source="CL-A", target="CL-B"),
            ConnectComponents(**who, task_id=task_id, source="CL-B", target="CL-A"),
            ReorderComponents(**who, task_id=task_id, order=["CL-C", "CL-B", "CL-A"]),
            RemoveComponent(**who, task_id=task_id, component_id="CL-B"), DeleteTask(**who, task_id=task_id),
            DeleteApp(**who)]


async def test_an_app_is_owned_by_its_creator():
    builder = Builder()
    app_id = await builder.app()
    assert builder.stored(app_id).info.owner == USER


async def test_nobody_but_the_owner_changes_or_deletes_an_app_and_the_refusal_names_the_owner():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"), snapshot("CL-C"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B", edges=[("CL-A", "CL-B")])
    before = copy.deepcopy(builder.stored(app_id))
    for edit in edits_by(STRANGER, app_id, task_id):
        with pytest.raises(Forbidden, match=f"app {app_id} belongs to 'kim'; only its owner or an admin"):
            await builder.handle(edit)
    assert builder.stored(app_id) == before and builder.published() == []
    with pytest.raises(Forbidden, match="belongs to 'kim'"):  # nor import into it
        await builder.handle(ImportApp(app_id=app_id, app_ref=await builder.app("other"), user=STRANGER))


async def test_an_admin_changes_and_deletes_anyones_app():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"), snapshot("CL-C"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A", "CL-B", edges=[("CL-A", "CL-B")])
    for edit in edits_by("admin", app_id, task_id, is_admin=True):
        await builder.handle(edit)
    assert app_id not in builder.state.apps
    assert builder.published() == ["app.spec_created", "app.deleted"]


async def test_an_app_without_an_owner_is_changed_by_admins_only():
    builder = Builder()
    app_id = await builder.app()
    builder.stored(app_id).info.owner = None  # an App migrated without a recorded creator
    with pytest.raises(Forbidden, match="belongs to the platform"):
        await builder.handle(ChangeApp(app_id=app_id, user=USER, changes={"name": "x"}))
    await builder.handle(ChangeApp(app_id=app_id, user="admin", is_admin=True, changes={"name": "x"}))


async def test_an_admin_transfers_an_app_and_the_new_owner_may_change_it_the_old_one_not():
    builder = Builder()
    app_id = await builder.app()
    revision = builder.revision(app_id)
    await builder.handle(TransferApp(app_id=app_id, user="admin", is_admin=True, new_owner=STRANGER))
    assert builder.stored(app_id).info.owner == STRANGER
    assert builder.state.transfers == [(app_id, USER, STRANGER, "admin")]
    [event] = builder.uows.published
    assert (event.type, event.correlation_id, event.data.model_dump()) == (
        "app.owner_changed", app_id, {"app_id": app_id, "owner": STRANGER, "previous": USER, "changed_by": "admin"})
    await builder.handle(TransferApp(app_id=app_id, user="admin", is_admin=True, new_owner=STRANGER))
    assert builder.published() == ["app.owner_changed"]  # to the owner it has: nothing happens
    assert builder.revision(app_id) == revision  # not an edit of its content
    await builder.handle(ChangeApp(app_id=app_id, user=STRANGER, changes={"name": "lee's now"}))
    with pytest.raises(Forbidden, match=f"belongs to '{STRANGER}'"):
        await builder.handle(ChangeApp(app_id=app_id, user=USER, changes={"name": "mine again"}))


async def test_only_an_admin_transfers_an_app_not_even_its_owner():
    builder = Builder()
    app_id = await builder.app()
    for user in (USER, STRANGER):
        with pytest.raises(Forbidden, match=f"only an admin may transfer app {app_id}"):
            await builder.handle(TransferApp(app_id=app_id, user=user, new_owner=STRANGER))
    assert builder.stored(app_id).info.owner == USER and builder.state.transfers == []


# ---------------------------------------------------------------- events

def component_event(event_type: str, component: ComponentSnapshot, occurred_at: datetime):
    event = make_event(event_type, ComponentChanged(component=component), producer="library",
                       correlation_id=component.component_id)
    return event.model_copy(update={"occurred_at": occurred_at})


async def test_a_component_event_keeps_the_newest_snapshot_in_the_read_model_even_when_an_older_one_arrives_late():
    builder = Builder()
    now = datetime.now(timezone.utc)
    await builder.bus.handle_event(component_event("component.registered", snapshot("CL-A"), now))
    await builder.bus.handle_event(component_event("component.updated", snapshot("CL-A", version="1.0.2"),
                                                   now + timedelta(seconds=2)))
    await builder.bus.handle_event(component_event("component.updated", snapshot("CL-A", version="1.0.1"),
                                                   now + timedelta(seconds=1)))
    assert builder.state.library["CL-A"][0].version == "1.0.2"
    assert builder.published() == []


# ---------------------------------------------------------------- library versions (CL-05)

async def test_an_app_keeps_the_library_version_it_placed_until_its_owner_upgrades_it():
    builder = Builder(snapshot("CL-A", tag="1.0"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A")
    await builder.handle(ChangeComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER,
                                         params={"lr": 0.5}))
    first = await builder.handle(GenerateSpec(app_id=app_id, user=USER))
    [placed] = first.spec["tasks"][0]["components"]
    assert (placed["library_version"], placed["image"]["tag"]) == ("1.0.0", "1.0")

    newer = snapshot("CL-A", version="1.0.1", tag="2.0").model_copy(update={"params": {"lr": 0.1, "seed": 7}})
    await builder.bus.handle_event(component_event("component.updated", newer, datetime.now(timezone.utc)))
    await builder.handle(ChangeApp(app_id=app_id, user=USER, changes={"description": "an unrelated edit"}))
    second = await builder.handle(GenerateSpec(app_id=app_id, user=USER))
    assert second.spec["tasks"][0]["components"][0]["library_version"] == "1.0.0"  # not moved by the library
    assert second.spec["tasks"][0]["components"][0]["image"]["tag"] == "1.0"

    task = await builder.handle(UpgradeComponent(app_id=app_id, task_id=task_id, component_id="CL-A", user=USER))
    [moved] = task.components
    assert (moved.library_version, moved.image.tag, moved.params) == ("1.0.1", "2.0", {"lr": 0.5, "seed": 7})
    third = await builder.handle(GenerateSpec(app_id=app_id, user=USER))
    assert third.spec["tasks"][0]["components"][0]["library_version"] == "1.0.1"


async def test_upgrading_a_component_not_placed_in_the_task_is_not_found():
    builder = Builder(snapshot("CL-A"), snapshot("CL-B"))
    app_id = await builder.app()
    task_id = await builder.task(app_id, "CL-A")
    with pytest.raises(NotFound, match="component CL-B is not placed in task"):
        await builder.handle(UpgradeComponent(app_id=app_id, task_id=task_id, component_id="CL-B", user=USER))
