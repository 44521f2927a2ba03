"""All of the Builder's SQL. Every function runs on the caller's connection (and transaction)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from contracts.events import ComponentSnapshot
from contracts.resources import Resources
from contracts.spec import AppSpec, ImageRef, ImportedApp, Storage, TrainingConfig
from services.builder.domain import App, AppInfo, PlacedComponent, SpecSummary, Task
from services.kit.errors import NotFound

_APP_COLUMNS = """
    a.app_id, a.name, a.description, a.version, a.status, a.env_vars, a.secret_env_vars, a.training_config, a.storage,
    a.test_run_ref, a.revision, a.created_by, a.created_at, a.updated_by, a.updated_at, a.owner,
    latest.revision AS spec_revision, latest.version AS latest_spec_version,
    (SELECT count(*) FROM tasks t WHERE t.app_id = a.app_id) AS task_count,
    (SELECT count(*) FROM components c WHERE c.app_id = a.app_id) AS component_count
"""
_APP_FROM = """
    FROM apps a
    LEFT JOIN LATERAL (SELECT s.revision, s.version FROM spec_versions s WHERE s.app_id = a.app_id
                       ORDER BY s.created_at DESC LIMIT 1) latest ON true
"""


def _info(row: asyncpg.Record) -> AppInfo:
    return AppInfo(
        app_id=row["app_id"], name=row["name"], description=row["description"], version=row["version"],
        status=row["status"], env_vars=row["env_vars"], secret_env_vars=row["secret_env_vars"],
        training_config=TrainingConfig.model_validate(row["training_config"]),
        storage=Storage.model_validate(row["storage"]), test_run_ref=row["test_run_ref"],
        task_count=row["task_count"], component_count=row["component_count"],
        revision=row["revision"], spec_revision=row["spec_revision"],
        latest_spec_version=row["latest_spec_version"], created_by=row["created_by"],
        created_at=row["created_at"], updated_by=row["updated_by"], updated_at=row["updated_at"],
        owner=row["owner"],
    )


def _component(row: asyncpg.Record) -> PlacedComponent:
    return PlacedComponent(
        component_id=row["component_id"], name=row["name"], type=row["type"],
        image=ImageRef(registry=row["registry"], tag=row["tag"]),
        resources=Resources.model_validate(row["resources"]), params=row["params"],
        library_version=row["library_version"],
    )


# ---------------------------------------------------------------- apps

async def app_id_taken(conn: asyncpg.Connection, app_id: str) -> bool:
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM apps WHERE app_id = $1) OR EXISTS (SELECT 1 FROM spec_versions WHERE app_id = $1)",
        app_id)


async def insert_app(conn: asyncpg.Connection, info: AppInfo) -> None:
    await conn.execute(
        "INSERT INTO apps (app_id, name, description, version, env_vars, training_config, storage, test_run_ref,"
        " created_by, updated_by, owner, secret_env_vars) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $11)",
        info.app_id, info.name, info.description, info.version, info.env_vars,
        info.training_config.model_dump(), info.storage.model_dump(), info.test_run_ref, info.created_by, info.owner,
        info.secret_env_vars)


async def app_info(conn: asyncpg.Connection, app_id: str, *, lock: bool = False) -> AppInfo:
    """The App's own fields; `lock` serialises every edit of one App (a workflow check needs a stable graph)."""
    row = await conn.fetchrow(f"SELECT {_APP_COLUMNS} {_APP_FROM} WHERE a.app_id = $1"
                              + (" FOR UPDATE OF a" if lock else ""), app_id)
    if row is None:
        raise NotFound(f"app {app_id} not found")
    return _info(row)


async def lock_apps(conn: asyncpg.Connection, app_ids: list[str]) -> None:
    """Lock several Apps in one order, so two crossing imports cannot deadlock."""
    await conn.execute("SELECT 1 FROM apps WHERE app_id = ANY($1::text[]) ORDER BY app_id FOR UPDATE",
                       sorted(app_ids))


async def list_apps(conn: asyncpg.Connection, status: str | None, owner: str | None, limit: int,
                    offset: int) -> tuple[list[AppInfo], int]:
    where = " WHERE ($1::text IS NULL OR a.status = $1) AND ($2::text IS NULL OR a.owner = $2)"
    total = await conn.fetchval("SELECT count(*) FROM apps a" + where, status, owner)
    rows = await conn.fetch(f"SELECT {_APP_COLUMNS} {_APP_FROM}" + where +
                            " ORDER BY a.updated_at DESC, a.app_id LIMIT $3 OFFSET $4", status, owner, limit, offset)
    return [_info(r) for r in rows], total


async def placed_resources(conn: asyncpg.Connection, app_ids: list[str]) -> dict[str, list[asyncpg.Record]]:
    """Every placed component's id, name and resources of these Apps (for the list's largest-resource column)."""
    found: dict[str, list[asyncpg.Record]] = {app_id: [] for app_id in app_ids}
    for row in await conn.fetch("SELECT app_id, component_id, name, resources FROM components"
                                " WHERE app_id = ANY($1::text[]) ORDER BY app_id, task_id, position", app_ids):
        found[row["app_id"]].append(row)
    return found


async def apps_to_seal(conn: asyncpg.Connection) -> list[str]:
    """Apps from before secrets existed with a plain env var whose name has a secret word (migration 0004)."""
    return [row["app_id"] for row in await conn.fetch("SELECT app_id FROM secret_seal_pending ORDER BY app_id")]


async def sealed(conn: asyncpg.Connection, app_id: str) -> None:
    await conn.execute("DELETE FROM secret_seal_pending WHERE app_id = $1", app_id)


async def save_app(conn: asyncpg.Connection, info: AppInfo) -> None:
    await conn.execute(
        "UPDATE apps SET name = $2, description = $3, version = $4, status = $5, env_vars = $6,"
        " training_config = $7, storage = $8, test_run_ref = $9, secret_env_vars = $10 WHERE app_id = $1",
        info.app_id, info.name, info.description, info.version, info.status, info.env_vars,
        info.training_config.model_dump(), info.storage.model_dump(), info.test_run_ref, info.secret_env_vars)


async def touch(conn: asyncpg.Connection, app_id: str, user: str) -> None:
    """Every edit of an App's content moves its revision, so "changed since the last spec" is one comparison."""
    await conn.execute("UPDATE apps SET revision = revision + 1, updated_by = $2, updated_at = now()"
                       " WHERE app_id = $1", app_id, user)


async def transfer(conn: asyncpg.Connection, app_id: str, previous: str | None, new_owner: str, by: str) -> None:
    """The App's new owner, and the transfer in the audit trail."""
    await conn.execute("UPDATE apps SET owner = $2 WHERE app_id = $1", app_id, new_owner)
    await conn.execute("INSERT INTO owner_transfers (app_id, from_owner, to_owner, transferred_by)"
                       " VALUES ($1, $2, $3, $4)", app_id, previous, new_owner, by)


async def delete_app(conn: asyncpg.Connection, app_id: str) -> None:
    await conn.execute("DELETE FROM apps WHERE app_id = $1", app_id)


# ---------------------------------------------------------------- tasks

async def take_task_numbers(conn: asyncpg.Connection, app_id: str, count: int) -> int:
    """Reserve `count` task numbers; returns the first."""
    return await conn.fetchval("UPDATE apps SET next_task_number = next_task_number + $2 WHERE app_id = $1"
                               " RETURNING next_task_number - $2", app_id, count)


async def insert_task(conn: asyncpg.Connection, app_id: str, number: int, task: Task) -> None:
    await conn.execute("INSERT INTO tasks (app_id, task_id, number, name, imported_from) VALUES ($1, $2, $3, $4, $5)",
                       app_id, task.task_id, number, task.name, task.imported_from)
    for position, component in enumerate(task.components, start=1):
        await insert_component(conn, app_id, task.task_id, component, position)
    await conn.executemany("INSERT INTO edges (app_id, task_id, from_id, to_id) VALUES ($1, $2, $3, $4)",
                           [(app_id, task.task_id, s, t) for s, t in task.workflow])


async def rename_task(conn: asyncpg.Connection, app_id: str, task_id: str, name: str) -> None:
    await conn.execute("UPDATE tasks SET name = $3 WHERE app_id = $1 AND task_id = $2", app_id, task_id, name)


async def delete_task(conn: asyncpg.Connection, app_id: str, task_id: str) -> None:
    await conn.execute("DELETE FROM tasks WHERE app_id = $1 AND task_id = $2", app_id, task_id)


async def _tasks(conn: asyncpg.Connection, app_id: str, task_id: str | None) -> list[Task]:
    task_rows = await conn.fetch("SELECT task_id, name, imported_from FROM tasks WHERE app_id = $1"
                                 " AND ($2::text IS NULL OR task_id = $2) ORDER BY number", app_id, task_id)
    tasks = {r["task_id"]: Task(task_id=r["task_id"], name=r["name"], imported_from=r["imported_from"])
             for r in task_rows}
    for row in await conn.fetch("SELECT * FROM components WHERE app_id = $1 AND ($2::text IS NULL OR task_id = $2)"
                                " ORDER BY task_id, position", app_id, task_id):
        tasks[row["task_id"]].components.append(_component(row))
    for row in await conn.fetch("SELECT task_id, from_id, to_id FROM edges WHERE app_id = $1"
                                " AND ($2::text IS NULL OR task_id = $2) ORDER BY id", app_id, task_id):
        tasks[row["task_id"]].workflow.append((row["from_id"], row["to_id"]))
    return list(tasks.values())


async def load_task(conn: asyncpg.Connection, app_id: str, task_id: str) -> Task:
    found = await _tasks(conn, app_id, task_id)
    if not found:
        raise NotFound(f"task {task_id} not found in app {app_id}")
    return found[0]


async def load_app(conn: asyncpg.Connection, app_id: str, *, lock: bool = False) -> App:
    info = await app_info(conn, app_id, lock=lock)
    imported = await conn.fetch("SELECT app_ref, name FROM imported_apps WHERE app_id = $1 ORDER BY id", app_id)
    return App(info=info, tasks=await _tasks(conn, app_id, None),
               imported_apps=[ImportedApp(app_ref=r["app_ref"], name=r["name"]) for r in imported])


# ---------------------------------------------------------------- components and workflow

async def insert_component(conn: asyncpg.Connection, app_id: str, task_id: str, component: PlacedComponent,
                           position: int) -> None:
    await conn.execute(
        "INSERT INTO components (app_id, task_id, component_id, name, type, registry, tag, resources, params,"
        " library_version, position) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        app_id, task_id, component.component_id, component.name, component.type, component.image.registry,
        component.image.tag, component.resources.model_dump(), component.params, component.library_version, position)


async def update_component(conn: asyncpg.Connection, app_id: str, task_id: str, component: PlacedComponent) -> None:
    await conn.execute(
        "UPDATE components SET name = $4, registry = $5, tag = $6, resources = $7, params = $8, type = $9,"
        " library_version = $10 WHERE app_id = $1 AND task_id = $2 AND component_id = $3",
        app_id, task_id, component.component_id, component.name, component.image.registry, component.image.tag,
        component.resources.model_dump(), component.params, component.type, component.library_version)


async def delete_component(conn: asyncpg.Connection, app_id: str, task_id: str, component_id: str) -> None:
    """Its edges go with it (ON DELETE CASCADE), as the domain's Task.remove says."""
    await conn.execute("DELETE FROM components WHERE app_id = $1 AND task_id = $2 AND component_id = $3",
                       app_id, task_id, component_id)


async def save_order(conn: asyncpg.Connection, app_id: str, task: Task) -> None:
    order = task.order
    await conn.execute(
        "UPDATE components c SET position = o.position"
        " FROM unnest($3::text[], $4::int[]) AS o(component_id, position)"
        " WHERE c.app_id = $1 AND c.task_id = $2 AND c.component_id = o.component_id AND c.position <> o.position",
        app_id, task.task_id, order, list(range(1, len(order) + 1)))


async def insert_edge(conn: asyncpg.Connection, app_id: str, task_id: str, source: str, target: str) -> None:
    await conn.execute("INSERT INTO edges (app_id, task_id, from_id, to_id) VALUES ($1, $2, $3, $4)",
                       app_id, task_id, source, target)


async def delete_edge(conn: asyncpg.Connection, app_id: str, task_id: str, source: str, target: str) -> None:
    await conn.execute("DELETE FROM edges WHERE app_id = $1 AND task_id = $2 AND from_id = $3 AND to_id = $4",
                       app_id, task_id, source, target)


# ---------------------------------------------------------------- imports

async def insert_import(conn: asyncpg.Connection, app_id: str, imported: ImportedApp) -> None:
    await conn.execute("INSERT INTO imported_apps (app_id, app_ref, name) VALUES ($1, $2, $3)",
                       app_id, imported.app_ref, imported.name)


async def delete_import(conn: asyncpg.Connection, app_id: str, app_ref: str) -> None:
    """Forget an import together with every task it brought."""
    await conn.execute("DELETE FROM tasks WHERE app_id = $1 AND imported_from = $2", app_id, app_ref)
    await conn.execute("DELETE FROM imported_apps WHERE app_id = $1 AND app_ref = $2", app_id, app_ref)


async def drop_import_if_unused(conn: asyncpg.Connection, app_id: str, app_ref: str) -> None:
    """An import whose last task was deleted no longer belongs in imported_apps[]."""
    await conn.execute("DELETE FROM imported_apps i WHERE i.app_id = $1 AND i.app_ref = $2 AND NOT EXISTS"
                       " (SELECT 1 FROM tasks t WHERE t.app_id = $1 AND t.imported_from = $2)", app_id, app_ref)


# ---------------------------------------------------------------- spec store

async def spec_versions_of(conn: asyncpg.Connection, app_id: str) -> set[str]:
    return {r["version"] for r in await conn.fetch("SELECT version FROM spec_versions WHERE app_id = $1", app_id)}


async def insert_spec(conn: asyncpg.Connection, spec: AppSpec, revision: int, summary: SpecSummary,
                      created_by: str) -> None:
    await conn.execute(
        "INSERT INTO spec_versions (app_id, version, revision, name, spec, task_count, component_count,"
        " largest_component, needs_approval, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        spec.app_id, spec.version, revision, spec.name, spec.to_wire(), summary.task_count, summary.component_count,
        summary.largest_component, summary.needs_approval, created_by, spec.created_at)


async def spec_file(conn: asyncpg.Connection, app_id: str, version: str | None) -> dict[str, Any] | None:
    return await conn.fetchval(
        "SELECT spec FROM spec_versions WHERE app_id = $1 AND ($2::text IS NULL OR version = $2)"
        " ORDER BY created_at DESC, revision DESC LIMIT 1", app_id, version)


async def list_specs(conn: asyncpg.Connection, app_id: str | None, latest_only: bool, limit: int,
                     offset: int) -> tuple[list[asyncpg.Record], int]:
    where = (" FROM spec_versions s WHERE ($1::text IS NULL OR app_id = $1) AND (NOT $2 OR NOT EXISTS"
             " (SELECT 1 FROM spec_versions n WHERE n.app_id = s.app_id AND n.created_at > s.created_at))")
    total = await conn.fetchval("SELECT count(*)" + where, app_id, latest_only)
    rows = await conn.fetch(
        "SELECT app_id, name, version, created_by, created_at, task_count, component_count, largest_component,"
        " needs_approval" + where + " ORDER BY created_at DESC, app_id LIMIT $3 OFFSET $4",
        app_id, latest_only, limit, offset)
    return list(rows), total


# ---------------------------------------------------------------- library read model

async def library_component(conn: asyncpg.Connection | asyncpg.Pool, component_id: str) -> ComponentSnapshot | None:
    snapshot = await conn.fetchval("SELECT snapshot FROM library_components WHERE component_id = $1", component_id)
    return None if snapshot is None else ComponentSnapshot.model_validate(snapshot)


async def remember_component(conn: asyncpg.Connection | asyncpg.Pool, snapshot: ComponentSnapshot,
                             as_of: datetime) -> None:
    """Keep the newest snapshot: a late, older event never overwrites a newer one."""
    await conn.execute(
        "INSERT INTO library_components (component_id, snapshot, as_of) VALUES ($1, $2, $3)"
        " ON CONFLICT (component_id) DO UPDATE SET snapshot = EXCLUDED.snapshot, as_of = EXCLUDED.as_of"
        " WHERE library_components.as_of < EXCLUDED.as_of",
        snapshot.component_id, snapshot.model_dump(mode="json"), as_of)
