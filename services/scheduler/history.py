"""Resource usage over time (RS-06): what one sample records, the window a reader asks for, and the
buckets a chart draws. Pure: the recorder (engine/history.py) and the route (history_api.py) do the I/O.

A sample is the cluster's figures at one moment, one row per resource: `gpu:<type>` (GPUs), `memory`
(bytes), `cpu` (cores), each with total, allocated (the seed's "requested") and used (measured, or
None where the runner cannot measure it: never a copy of the allocation). A window cuts the time
between `from` and `to` into buckets of `step` seconds, aligned on the epoch so that two reads a
minute apart draw the same buckets; each bucket holds the mean of the samples inside it (None: no
sample, or nothing measured).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

GPU = "gpu:"
MEMORY = "memory"
CPU = "cpu"
MAX_POINTS = 1000          # buckets one read answers at most
TARGET_POINTS = 120        # what a read without `step` aims at: a chart's width of points
DEFAULT_SPAN = timedelta(hours=6)
# the steps a read without `step` picks from: round figures on a time axis
NICE_STEPS = (10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


@dataclass(frozen=True)
class SampleRow:
    resource: str
    total: float
    allocated: float
    used: float | None


def sample_rows(view: Mapping[str, Any]) -> list[SampleRow]:
    """One sample's rows from what GET /resources answers (schemas.resources)."""
    rows = [SampleRow(GPU + g["gpu_type"], float(g["total"]), float(g["allocated"]),
                      None if g["used"] is None else float(g["used"])) for g in view["gpus"]]
    memory, cpu = view["memory"], view["cpu"]
    rows.append(SampleRow(MEMORY, float(memory["total_bytes"]), float(memory["allocated_bytes"]),
                          None if memory["used_bytes"] is None else float(memory["used_bytes"])))
    rows.append(SampleRow(CPU, float(cpu["total"]), float(cpu["allocated"]),
                          None if cpu["used"] is None else float(cpu["used"])))
    return rows


@dataclass(frozen=True)
class Window:
    start: datetime   # the first bucket's start (aligned on `step`)
    end: datetime     # exclusive
    step_s: int

    @property
    def points(self) -> int:
        return max(1, math.ceil((self.end - self.start).total_seconds() / self.step_s))

    def bucket_start(self, index: int) -> datetime:
        return self.start + timedelta(seconds=index * self.step_s)

    def bucket_of(self, at: datetime) -> int | None:
        """Which bucket a sample taken at `at` falls in (None: outside the window); the SQL of
        history_api.py computes the same."""
        if at < self.start or at >= self.end:
            return None
        return int((at - self.start).total_seconds() // self.step_s)


class WindowError(ValueError):
    """A window that cannot be answered; the message says why (a 422)."""


def _aware(name: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise WindowError(f"'{name}' needs a time zone (e.g. 2026-01-31T12:00:00Z)")
    return value


def nice_step(span_s: float, sample_s: float) -> int:
    """The smallest round step giving at most TARGET_POINTS buckets, never finer than the sampling."""
    wanted = max(span_s / TARGET_POINTS, sample_s, 1)
    return next((s for s in NICE_STEPS if s >= wanted), math.ceil(wanted))


def window(since: datetime | None, until: datetime | None, step_s: int | None, *, now: datetime,
           sample_s: float, max_points: int = MAX_POINTS) -> Window:
    """The buckets to answer for `from`/`to`/`step` (each optional: the last six hours up to now, a
    step for about TARGET_POINTS buckets)."""
    until = _aware("to", until) or now
    since = _aware("from", since) or until - DEFAULT_SPAN
    if since >= until:
        raise WindowError("'from' must be before 'to'")
    span = (until - since).total_seconds()
    step = step_s if step_s is not None else nice_step(span, sample_s)
    if step < 1:
        raise WindowError("'step' is a whole number of seconds, at least 1")
    epoch = since.timestamp()
    start = datetime.fromtimestamp(epoch - epoch % step, timezone.utc)
    chosen = Window(start, until, step)
    if chosen.points > max_points:
        raise WindowError(f"{chosen.points} buckets of {step} s between 'from' and 'to': at most {max_points};"
                          " give a larger 'step' or a shorter window")
    return chosen


@dataclass(frozen=True)
class Bucket:
    """The mean figures of one resource's samples in one bucket (what the SQL's GROUP BY answers)."""

    index: int
    resource: str
    total: float
    allocated: float
    used: float | None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def series(chosen: Window, buckets: Iterable[Bucket], *, measured: Sequence[str] = ()) -> dict[str, Any]:
    """The answer of GET /resources/history: the buckets' start times and, per GPU type, for memory and
    CPU, one value per bucket of total / allocated / used (None where no sample fell, or nothing was
    measured)."""
    points = chosen.points
    by_resource: dict[str, dict[str, list[float | None]]] = {}
    for bucket in buckets:
        if not 0 <= bucket.index < points:
            continue
        lines = by_resource.setdefault(bucket.resource, {k: [None] * points for k in ("total", "allocated", "used")})
        lines["total"][bucket.index] = _round(bucket.total)
        lines["allocated"][bucket.index] = _round(bucket.allocated)
        lines["used"][bucket.index] = _round(bucket.used)

    def empty() -> dict[str, list[float | None]]:
        return {k: [None] * points for k in ("total", "allocated", "used")}

    gpus = [{"gpu_type": resource[len(GPU):], **lines}
            for resource, lines in sorted(by_resource.items()) if resource.startswith(GPU)]
    memory = by_resource.get(MEMORY) or empty()
    return {
        "from": chosen.start.isoformat(),
        "to": chosen.end.isoformat(),
        "step_s": chosen.step_s,
        "times": [chosen.bucket_start(i).isoformat() for i in range(points)],
        "gpus": gpus,
        "memory": {f"{k}_bytes": [None if v is None else int(v) for v in values] for k, values in memory.items()},
        "cpu": by_resource.get(CPU) or empty(),
        "measured": sorted(measured),
    }
