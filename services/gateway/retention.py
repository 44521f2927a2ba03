"""The audit log's retention job: delete rows older than N days (AVATAR_AUDIT_RETENTION_DAYS, 400 by
default), as the schema's owner (AVATAR_POSTGRES_ADMIN_URL), the only role the table's trigger lets
delete, and only with `avatar.audit_retention` set for the transaction.

    python -m services.gateway.retention [--older-than-days N]

Run it from cron or a Kubernetes CronJob (daily is plenty). Deletes go in batches, each its own short
transaction, and the job leaves a decision row saying how many rows it removed and up to when.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from datetime import datetime, timedelta, timezone

import asyncpg

from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)
SCHEMA = "gateway"
BATCH = 5000

_DELETE = ("DELETE FROM audit_log WHERE id IN "
           "(SELECT id FROM audit_log WHERE at < $1 ORDER BY at, id LIMIT $2)")
_RECORD = ("INSERT INTO audit_log (kind, actor, action, target_type, target_id, after, outcome, producer) "
           "VALUES ('decision', $1, 'audit.retention', 'audit_log', '*', $2::jsonb, 'ok', 'gateway')")


async def prune(admin_url: str, older_than_days: int, *, schema: str = SCHEMA, batch: int = BATCH) -> int:
    """Delete audit rows older than `older_than_days`; returns how many."""
    if older_than_days < 1:
        raise ValueError("older_than_days must be at least 1")
    cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
    conn = await asyncpg.connect(admin_url, server_settings={"search_path": schema,
                                                             "application_name": "avatar-audit-retention"})
    try:
        total = 0
        while True:
            async with conn.transaction():
                await conn.execute("SET LOCAL avatar.audit_retention = 'on'")
                status = await conn.execute(_DELETE, cutoff, batch)
            count = int(status.rsplit(" ", 1)[-1])
            total += count
            if count < batch:
                break
        actor = await conn.fetchval("SELECT current_user")
        await conn.execute(_RECORD, actor, json.dumps({"deleted": total, "older_than": cutoff.isoformat(),
                                                       "older_than_days": older_than_days}))
        return total
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    settings = GatewaySettings()
    parser = argparse.ArgumentParser(prog="python -m services.gateway.retention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--older-than-days", type=int, default=settings.audit_retention_days,
                        help=f"delete rows older than this many days (default {settings.audit_retention_days})")
    args = parser.parse_args(argv)
    if args.older_than_days < 1:
        parser.error("--older-than-days must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    admin_url = settings.postgres_admin_url or settings.postgres_url
    deleted = asyncio.run(prune(admin_url, args.older_than_days))
    log.info("audit retention: deleted %d rows older than %d days", deleted, args.older_than_days)
    print(json.dumps({"deleted": deleted, "older_than_days": args.older_than_days}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
