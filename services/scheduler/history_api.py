"""HTTP API of the usage history (RS-06): GET /resources/history, from the samples the leader records
(engine/history.py). Its own router beside api.py's, mounted by main.py."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request

from services.kit.auth import Reader
from services.kit.service import PlatformDep
from services.scheduler import history

router = APIRouter()

# one row per (bucket, resource): the buckets counted from the window's start as history.Window.bucket_of does
_BUCKETS = ("SELECT floor(extract(epoch FROM at - $1::timestamptz) / $3)::int AS index, resource,"
            " max(total) AS total, avg(allocated) AS allocated, avg(used) AS used"
            " FROM resource_samples WHERE at >= $1 AND at < $2"
            " GROUP BY 1, 2 ORDER BY 1, 2")


@router.get("/resources/history", tags=["resources"],
            summary="Usage over time per GPU type, memory and CPU: total / allocated (requested) / used (RS-06)",
            responses={422: {"description": "a window that cannot be answered (order, time zone, too many buckets)"}})
async def get_history(
        request: Request, _: Reader, platform: PlatformDep,
        since: Annotated[datetime | None, Query(alias="from", description="ISO 8601; default: 6 h before `to`")] = None,
        until: Annotated[datetime | None, Query(alias="to", description="ISO 8601, exclusive; default: now")] = None,
        step: Annotated[int | None, Query(ge=1, le=604800, description="bucket seconds; default ~120 buckets")] = None,
) -> dict[str, Any]:
    state = request.app.state.scheduler
    settings = state.settings
    try:
        chosen = history.window(since, until, step, now=datetime.now(timezone.utc),
                                sample_s=settings.scheduler_history_seconds)
    except history.WindowError as exc:
        raise HTTPException(422, str(exc)) from None
    except (ValueError, OverflowError):  # a window reaching past year 1 or 9999: no bucket to draw there
        raise HTTPException(422, "'from' and 'to' must lie between the years 1970 and 9999") from None
    async with platform.pool.acquire() as conn:
        rows = await conn.fetch(_BUCKETS, chosen.start, chosen.end, chosen.step_s)
    buckets = [history.Bucket(r["index"], r["resource"], r["total"], r["allocated"], r["used"]) for r in rows]
    answer = history.series(chosen, buckets, measured=sorted(state.engine.measures))
    answer["sample_s"] = settings.scheduler_history_seconds
    answer["retention_days"] = settings.scheduler_history_retention_days
    return answer
