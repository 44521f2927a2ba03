import asyncio

from services.kit.db import KIT_MIGRATIONS, apply_migrations, create_pool


async def test_migrations_applied_twice_and_concurrently_are_safe(fresh, tmp_path):
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id INT PRIMARY KEY);")
    (tmp_path / "0002_more.sql").write_text("ALTER TABLE things ADD COLUMN name TEXT;")
    sources = {"kit": KIT_MIGRATIONS, "svc": tmp_path}
    pools = [await create_pool(fresh.postgres_url, "svc") for _ in range(3)]
    try:
        results = await asyncio.gather(*(apply_migrations(pool, "svc", sources) for pool in pools))
        applied = sorted(name for result in results for name in result)
        assert applied == ["kit/0001_outbox_inbox.sql", "kit/0002_trace_context.sql", "kit/0003_retention.sql",
                           "kit/0004_secrets.sql", "svc/0001_things.sql", "svc/0002_more.sql"]
        assert await apply_migrations(pools[0], "svc", sources) == []
        rows = await pools[0].fetch("SELECT source, version FROM schema_migrations ORDER BY source, version")
        assert [(r["source"], r["version"]) for r in rows] == [
            ("kit", 1), ("kit", 2), ("kit", 3), ("kit", 4), ("svc", 1), ("svc", 2)]
        await pools[0].execute("INSERT INTO things (id, name) VALUES (1, 'x')")
    finally:
        for pool in pools:
            await pool.close()
