"""The Builder's handlers: one per command and per consumed event, each one unit of work.

App-level commands answer nothing (the route reads the App as committed); Task-level ones answer the
Task as they left it.
"""
from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timezone
from typing import Any, AsyncIterator, NamedTuple

from contracts.events import AppOwnerChanged, ComponentSnapshot, Event
from contracts.spec import ImportedApp
from services.builder import domain, revision
from services.builder.commands import (AddTask, AppEdit, ChangeApp, ChangeComponent, ConnectComponents, CreateApp,
                                       DeleteApp, DeleteTask, DisconnectComponents, GenerateSpec, ImportApp,
                                       PlaceComponent, RemoveComponent, RemoveImport, RenameTask, ReorderComponents,
                                       SealSecretEnvVars, TaskEdit, TransferApp, UpgradeComponent)
from services.builder.domain import AppInfo, PlacedComponent, Task, Threshold
from services.builder.library import LibraryClient
from services.builder.unit_of_work import BuilderUnitOfWork
from services.kit import secrets
from services.kit.audit import list_of, record_decision
from services.kit.errors import DomainError, Invalid, NotFound
from services.kit.metrics import Counter
from services.kit.secrets import SecretCipher

log = logging.getLogger(__name__)
SPECS_GENERATED = Counter("avatar_builder_specs_generated_total", "App spec versions written")
LOOKUPS = Counter("avatar_builder_library_lookups_total", "Where placed components were found",
                  ["source"])  # read_model | library | unknown_component | unavailable
PLATFORM = "platform"  # who the audit trail names for a change the builder makes by itself
TRANSFERS = Counter("avatar_builder_owner_transfers_total", "Apps given to another owner by an admin")


class SpecFile(NamedTuple):
    spec: dict[str, Any]
    created: bool  # False: nothing changed since the latest spec, which this is


@contextlib.asynccontextmanager
async def _editing(uow: BuilderUnitOfWork, edit: AppEdit) -> AsyncIterator[AppInfo]:
    """Every edit of an App: by its owner or an admin, under its lock (edits of one App never interleave),
    and its revision moves."""
    async with uow:
        info = await uow.apps.info(edit.app_id, lock=True)
        info.check_may_change(edit.user, edit.is_admin)
        revision.check(edit.app_id, info.revision, edit.expected_revision)
        yield info
        await uow.apps.touch(edit.app_id, edit.user)
        await uow.commit()
        info.revision += 1  # touch moved it by one, under the lock


# ---------------------------------------------------------------- apps

async def create_app(cmd: CreateApp, uow: BuilderUnitOfWork, cipher: SecretCipher | None = None) -> str:
    plan = secrets.plan_env(cmd.env_vars)
    async with uow:
        app_id = domain.new_app_id()
        while await uow.apps.id_taken(app_id):
            app_id = domain.new_app_id()
        info = AppInfo(
            app_id=app_id, name=cmd.name, version=cmd.version, description=cmd.description,
            env_vars=plan.plain, training_config=cmd.training_config,
            storage=cmd.storage or domain.default_storage(cmd.name), created_by=cmd.user, owner=cmd.user)
        if plan.secret_names:
            info.secret_env_vars = await uow.secrets.apply(plan, cipher, owner=app_id, by=cmd.user)
        await uow.apps.add(info)
        await uow.commit()
    return app_id


async def change_app(cmd: ChangeApp, uow: BuilderUnitOfWork, cipher: SecretCipher | None = None) -> None:
    """BL-02: given env vars replace the App's; a secret's new value is stored encrypted and audited."""
    changes = dict(cmd.changes)
    given_env = changes.pop("env_vars", None)
    async with _editing(uow, cmd) as info:
        info = info.edited(changes)
        if given_env is not None:
            plan = secrets.plan_env(given_env, info.secret_env_vars)
            was_plain, was_secret = info.env_vars, set(info.secret_env_vars)
            info.env_vars = plan.plain
            info.secret_env_vars = {}
            if plan.secret_names or plan.removed:  # only then is there a value to store or a removal to audit
                info.secret_env_vars = await uow.secrets.apply(plan, cipher, owner=info.app_id, by=cmd.user)
            _record_env_change(uow, cmd, was_plain, was_secret, plan)
        await uow.apps.save(info)


def _record_env_change(uow: BuilderUnitOfWork, cmd: ChangeApp, was_plain: dict[str, Any], was_secret: set[str],
                       plan: secrets.EnvPlan) -> None:
    """The env var names before and after, and which values changed: names only, never a value."""
    changed = {name for name, value in plan.plain.items() if name in was_plain and was_plain[name] != value}
    changed |= set(plan.new_values) & was_secret  # a secret given a new value
    now_secret = set(plan.secret_names)
    if set(was_plain) == set(plan.plain) and was_secret == now_secret and not changed:
        return  # the same env vars again: nothing was decided
    record_decision(uow, action="builder.env_vars_change", actor=cmd.user, actor_role=cmd.role,
                    target_type="app", target_id=cmd.app_id,
                    before={"env_vars": list_of(was_plain), "secrets": list_of(was_secret)},
                    after={"env_vars": list_of(plan.plain), "secrets": list_of(now_secret),
                           "changed": list_of(changed)})


async def seal_secret_env_vars(cmd: SealSecretEnvVars, uow: BuilderUnitOfWork,
                               cipher: SecretCipher | None = None) -> list[str]:
    """The Apps whose secret-looking plain values it moved into encrypted storage (audited as the platform's
    change; the App counts as changed, so its next spec names them by reference)."""
    sealed = []
    async with uow:
        pending = await uow.apps.to_seal()
    for app_id in pending:
        async with uow:
            await uow.apps.sealed(app_id)
            try:
                info = await uow.apps.info(app_id, lock=True)
            except NotFound:  # deleted meanwhile
                await uow.commit()
                continue
            given: dict[str, Any] = {**info.env_vars,
                                     **{name: secrets.EnvVarInput(secret=True) for name in info.secret_env_vars}}
            plan = secrets.plan_env(given, info.secret_env_vars)
            if plan.new_values:
                info.env_vars = plan.plain
                info.secret_env_vars = await uow.secrets.apply(plan, cipher, owner=app_id, by=PLATFORM)
                await uow.apps.save(info)
                await uow.apps.touch(app_id, PLATFORM)
                sealed.append(app_id)
                log.info("app %s: the values of %s moved into encrypted storage", app_id,
                         ", ".join(sorted(plan.new_values)))
            await uow.commit()
    return sealed


async def delete_app(cmd: DeleteApp, uow: BuilderUnitOfWork) -> None:
    async with uow:
        app = await uow.apps.get(cmd.app_id, lock=True)
        revision.check(cmd.app_id, app.info.revision, cmd.expected_revision)
        app.delete(cmd.user, cmd.is_admin)
        await uow.apps.delete(cmd.app_id)
        await uow.commit()


async def transfer_app(cmd: TransferApp, uow: BuilderUnitOfWork) -> None:
    """An admin gives the App to another owner: recorded in the transfer trail and the log, not an edit of
    its content (the revision, and so "changed since the last spec", stays)."""
    async with uow:
        info = await uow.apps.info(cmd.app_id, lock=True)
        previous = info.transfer(cmd.new_owner, cmd.is_admin)
        if previous == cmd.new_owner:
            return
        await uow.apps.transfer(cmd.app_id, previous, cmd.new_owner, cmd.user)
        # the models service learns the owner from it: who may move the App's aliases
        uow.record("app.owner_changed", AppOwnerChanged(app_id=cmd.app_id, owner=cmd.new_owner, previous=previous,
                                                        changed_by=cmd.user), correlation_id=cmd.app_id)
        record_decision(uow, action="builder.owner_transfer", actor=cmd.user, actor_role=cmd.role,
                        target_type="app", target_id=cmd.app_id, before={"owner": previous},
                        after={"owner": cmd.new_owner})
        TRANSFERS.inc()
        await uow.commit()
    log.info("app %s transferred from %r to %r by %r", cmd.app_id, previous, cmd.new_owner, cmd.user)


async def import_app(cmd: ImportApp, uow: BuilderUnitOfWork) -> None:
    """BL-12: copy the other App's Tasks here, each marked with where it came from."""
    async with uow:
        await uow.apps.lock([cmd.app_id, cmd.app_ref])
        target = await uow.apps.get(cmd.app_id)
        target.info.check_may_change(cmd.user, cmd.is_admin)
        revision.check(cmd.app_id, target.info.revision, cmd.expected_revision)
        try:
            source = await uow.apps.get(cmd.app_ref)
        except NotFound:
            raise Invalid(f"unknown app {cmd.app_ref}: there is nothing to import", code="unknown_app") from None
        domain.check_import(target, source)
        first = await uow.tasks.take_numbers(cmd.app_id, len(source.tasks))
        for number, task in enumerate(source.tasks, start=first):
            await uow.tasks.add(cmd.app_id, number, task.copy_as(domain.task_id(number), cmd.app_ref))
        await uow.apps.add_import(cmd.app_id, ImportedApp(app_ref=cmd.app_ref, name=source.info.name))
        await uow.apps.touch(cmd.app_id, cmd.user)
        await uow.commit()


async def remove_import(cmd: RemoveImport, uow: BuilderUnitOfWork) -> None:
    """Undo an import: it goes with every Task it brought."""
    async with _editing(uow, cmd):
        app = await uow.apps.get(cmd.app_id)
        if not any(imported.app_ref == cmd.app_ref for imported in app.imported_apps):
            raise NotFound(f"app {cmd.app_ref} is not imported into {cmd.app_id}")
        await uow.apps.remove_import(cmd.app_id, cmd.app_ref)


async def generate_spec(cmd: GenerateSpec, uow: BuilderUnitOfWork, threshold: Threshold) -> SpecFile:
    """BL-04: a new spec version unless nothing changed since the latest, which is then the answer."""
    async with uow:
        app = await uow.apps.get(cmd.app_id, lock=True)
        app.info.check_may_change(cmd.user, cmd.is_admin)
        if app.info.spec_is_current:
            return SpecFile(await uow.apps.spec_file(cmd.app_id, app.info.latest_spec_version), created=False)
        now = datetime.now(timezone.utc)
        spec = app.publish_spec(await uow.apps.spec_versions(cmd.app_id),
                                now.replace(microsecond=now.microsecond // 1000 * 1000))
        await uow.apps.add_spec(spec, app.info.revision, domain.summarize(spec, threshold), cmd.user)
        await uow.apps.save(app.info)
        SPECS_GENERATED.inc()
        await uow.commit()
    return SpecFile(spec.to_wire(), created=True)


# ---------------------------------------------------------------- tasks

@contextlib.asynccontextmanager
async def _editing_task(uow: BuilderUnitOfWork, edit: TaskEdit) -> AsyncIterator[Task]:
    async with _editing(uow, edit) as info:
        task = await uow.tasks.get(edit.app_id, edit.task_id)
        yield task
    task.revision = info.revision


async def add_task(cmd: AddTask, uow: BuilderUnitOfWork) -> Task:
    """BL-10: an empty Task, numbered after every Task the App ever had."""
    async with _editing(uow, cmd) as info:
        domain.check_room_for_tasks(info, 1)
        number = await uow.tasks.take_numbers(cmd.app_id, 1)
        task = Task(task_id=domain.task_id(number), name=cmd.name)
        await uow.tasks.add(cmd.app_id, number, task)
    task.revision = info.revision
    return task


async def rename_task(cmd: RenameTask, uow: BuilderUnitOfWork) -> Task:
    async with _editing_task(uow, cmd) as task:
        task.name = cmd.name
        await uow.tasks.rename(cmd.app_id, task)
    return task


async def delete_task(cmd: DeleteTask, uow: BuilderUnitOfWork) -> None:
    async with _editing_task(uow, cmd) as task:
        await uow.tasks.delete(cmd.app_id, cmd.task_id)
        if task.imported_from:
            await uow.apps.drop_import_if_unused(cmd.app_id, task.imported_from)


async def _look_up(uow: BuilderUnitOfWork, library: LibraryClient, component_id: str, authorization: str | None) -> ComponentSnapshot:
    """Ask the library for a component the read model has not heard of yet, and remember its answer."""
    try:
        found = await library.fetch(component_id, authorization)
    except DomainError as refused:
        LOOKUPS.labels(refused.code).inc()
        raise
    LOOKUPS.labels("library").inc()
    async with uow:
        await uow.library.remember(found, datetime.now(timezone.utc))
        await uow.commit()
    return found


async def _library_entry(uow: BuilderUnitOfWork, library: LibraryClient, cmd: PlaceComponent | UpgradeComponent,
                         ) -> ComponentSnapshot:
    """The library's current version of the component an edit places, found before the edit: a slow library
    must not hold the App's lock."""
    async with uow.statement():  # an unknown app or task is 404 (a stranger's 403) even when the library is down
        (await uow.apps.info(cmd.app_id)).check_may_change(cmd.user, cmd.is_admin)
        task = await uow.tasks.get(cmd.app_id, cmd.task_id)
        if isinstance(cmd, UpgradeComponent):
            task.component(cmd.component_id)  # 404 when the task holds no such placement
        found = await uow.library.get(cmd.component_id)
    if found is not None:
        LOOKUPS.labels("read_model").inc()
        return found
    return await _look_up(uow, library, cmd.component_id, cmd.authorization)


async def place_component(cmd: PlaceComponent, uow: BuilderUnitOfWork, library: LibraryClient) -> Task:
    """BL-01, BL-11: the library's image and defaults unless the author gives others."""
    found = await _library_entry(uow, library, cmd)
    component = PlacedComponent.from_library(
        found, name=cmd.name, image=cmd.image, params=cmd.params,
        resources=found.resources.model_copy(update=cmd.resources) if cmd.resources is not None else None)
    async with _editing_task(uow, cmd) as task:
        task.place(component)
        await uow.tasks.add_component(cmd.app_id, cmd.task_id, component, position=len(task.components))
    return task


async def upgrade_component(cmd: UpgradeComponent, uow: BuilderUnitOfWork, library: LibraryClient) -> Task:
    """CL-05: an App keeps the library version it placed until its owner moves it to the current one."""
    found = await _library_entry(uow, library, cmd)
    async with _editing_task(uow, cmd) as task:
        component = task.component(cmd.component_id).upgraded(found)
        task.replace(component)
        await uow.tasks.save_component(cmd.app_id, cmd.task_id, component)
    return task


async def change_component(cmd: ChangeComponent, uow: BuilderUnitOfWork) -> Task:
    """BL-03, BL-06: what is given changes; resources field by field, params as a whole."""
    async with _editing_task(uow, cmd) as task:
        component = task.component(cmd.component_id)
        component.name = cmd.name or component.name
        component.image = cmd.image or component.image
        if cmd.resources:
            component.resources = component.resources.model_copy(update=cmd.resources)
        if cmd.params is not None:
            component.params = cmd.params
        await uow.tasks.save_component(cmd.app_id, cmd.task_id, component)
    return task


async def remove_component(cmd: RemoveComponent, uow: BuilderUnitOfWork) -> Task:
    async with _editing_task(uow, cmd) as task:
        task.remove(cmd.component_id)
        await uow.tasks.remove_component(cmd.app_id, cmd.task_id, cmd.component_id)
        await uow.tasks.save_order(cmd.app_id, task)
    return task


async def connect_components(cmd: ConnectComponents, uow: BuilderUnitOfWork) -> Task:
    """BL-07, BL-09: the order follows the new edge if it must."""
    async with _editing_task(uow, cmd) as task:
        reordered = task.connect(cmd.source, cmd.target)
        await uow.tasks.add_edge(cmd.app_id, cmd.task_id, cmd.source, cmd.target)
        if reordered:
            await uow.tasks.save_order(cmd.app_id, task)
    return task


async def disconnect_components(cmd: DisconnectComponents, uow: BuilderUnitOfWork) -> Task:
    async with _editing_task(uow, cmd) as task:
        task.disconnect(cmd.source, cmd.target)
        await uow.tasks.remove_edge(cmd.app_id, cmd.task_id, cmd.source, cmd.target)
    return task


async def reorder_components(cmd: ReorderComponents, uow: BuilderUnitOfWork) -> Task:
    async with _editing_task(uow, cmd) as task:
        task.reorder(cmd.order)
        await uow.tasks.save_order(cmd.app_id, task)
    return task


# ---------------------------------------------------------------- events

async def remember_component(event: Event, uow: BuilderUnitOfWork) -> None:
    """The library registered or changed a component: the read model keeps its newest snapshot."""
    async with uow:
        await uow.library.remember(event.data.component, event.occurred_at)
        await uow.commit()


COMMANDS = {
    CreateApp: create_app, ChangeApp: change_app, SealSecretEnvVars: seal_secret_env_vars, DeleteApp: delete_app, TransferApp: transfer_app,
    ImportApp: import_app,
    RemoveImport: remove_import, GenerateSpec: generate_spec,
    AddTask: add_task, RenameTask: rename_task, DeleteTask: delete_task, PlaceComponent: place_component,
    ChangeComponent: change_component, UpgradeComponent: upgrade_component, RemoveComponent: remove_component,
    ConnectComponents: connect_components,
    DisconnectComponents: disconnect_components, ReorderComponents: reorder_components,
}
EVENTS = {"component.registered": remember_component, "component.updated": remember_component}
