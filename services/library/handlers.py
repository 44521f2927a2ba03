"""The library's handlers: one per command and per consumed event, each one unit of work."""
from __future__ import annotations

import logging

from contracts.events import Event
from services.kit.audit import list_of, record_decision
from services.kit.metrics import Counter
from services.library.commands import RegisterComponent, SeedCatalog, TransferComponent, UpdateComponent
from services.library.domain import Component
from services.library.schemas import ComponentRegistration
from services.library.unit_of_work import LibraryUnitOfWork

log = logging.getLogger(__name__)
SEED_USER = "library-seed"  # who created the seed catalog; its components belong to the platform (owner None)
CATALOG_CHANGES = Counter("avatar_library_changes_total", "Components registered or updated", ["event"])
TRANSFERS = Counter("avatar_library_owner_transfers_total", "Components given to another owner by an admin")


async def _register(uow: LibraryUnitOfWork, registration: ComponentRegistration, user: str) -> Component:
    number = await uow.components.next_number()
    component = Component.register(number, registration.model_dump(), None if user == SEED_USER else user)
    await uow.components.add(number, component, user)
    return component


async def register_component(cmd: RegisterComponent, uow: LibraryUnitOfWork) -> str:
    """CL-01; answers the new component's id."""
    async with uow:
        component = await _register(uow, cmd.registration, cmd.user)
        CATALOG_CHANGES.labels("registered").inc()
        await uow.commit()
    return component.correlation_id


async def update_component(cmd: UpdateComponent, uow: LibraryUnitOfWork) -> None:
    """CL-04, CL-05: a new version, the previous one kept; nothing when the changes change nothing."""
    async with uow:
        component = await uow.components.get(cmd.component_id, lock=True)
        version = component.snapshot.version
        if component.update(cmd.changes, cmd.user, cmd.is_admin):
            await uow.components.save(component, cmd.user)
            # the names of the fields changed, not their values (a command or params can be long)
            record_decision(uow, action="library.component_update", actor=cmd.user, actor_role=cmd.role,
                            target_type="component", target_id=cmd.component_id, before={"version": version},
                            after={"version": component.snapshot.version, "changed": list_of(component.changed)})
            CATALOG_CHANGES.labels("updated").inc()
        await uow.commit()


async def transfer_component(cmd: TransferComponent, uow: LibraryUnitOfWork) -> None:
    """An admin gives the component to another owner: recorded in the transfer trail and the log; no new
    version (nothing a run uses changes)."""
    async with uow:
        component = await uow.components.get(cmd.component_id, lock=True)
        previous = component.transfer(cmd.new_owner, cmd.is_admin)
        if previous == cmd.new_owner:
            return
        await uow.components.transfer(cmd.component_id, previous, cmd.new_owner, cmd.user)
        record_decision(uow, action="library.owner_transfer", actor=cmd.user, actor_role=cmd.role,
                        target_type="component", target_id=cmd.component_id, before={"owner": previous},
                        after={"owner": cmd.new_owner})
        TRANSFERS.inc()
        await uow.commit()
    log.info("component %s transferred from %r to %r by %r", cmd.component_id, previous, cmd.new_owner, cmd.user)


async def seed_catalog(cmd: SeedCatalog, uow: LibraryUnitOfWork) -> int:
    """Register the entries if the library is empty; answers how many were registered."""
    if not cmd.entries:
        return 0
    async with uow:
        await uow.components.lock_for_seeding()
        if await uow.components.any():
            return 0
        for entry in cmd.entries:
            await _register(uow, entry, SEED_USER)
        await uow.commit()
    log.info("seeded the library with %d components from %s", len(cmd.entries), cmd.source)
    return len(cmd.entries)


async def spec_created(event: Event, uow: LibraryUnitOfWork) -> None:
    """CL-03: `used_in` follows the App's newest spec."""
    async with uow:
        await uow.usage.record_spec(event.data.spec)
        await uow.commit()


async def app_deleted(event: Event, uow: LibraryUnitOfWork) -> None:
    async with uow:
        await uow.usage.forget_app(event.data.app_id, event.occurred_at)
        await uow.commit()


COMMANDS = {RegisterComponent: register_component, UpdateComponent: update_component,
            TransferComponent: transfer_component, SeedCatalog: seed_catalog}
EVENTS = {"app.spec_created": spec_created, "app.deleted": app_deleted}
