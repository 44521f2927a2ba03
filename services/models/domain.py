"""The rules of the model store, free of I/O: naming, layout, a model's life (the Model aggregate), metrics,
the promotion gate and aliases (the Alias aggregate), byte ranges."""
from __future__ import annotations

import hashlib
import math
import random
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events import ComponentArtifacts, ModelAliasMoved, ModelStored, ModelStoreFailed, WorkloadCompleted
from services.kit import ownership
from services.kit.errors import Conflict
from services.kit.objectstore import split_s3_url
from services.kit.unit_of_work import Aggregate

ModelStatus = Literal["pending", "stored"]
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
MODEL_ID_PATTERN = r"^MDL-[0-9a-f]{8}$"
# the run's headline numbers come from the component that reports rewards (the RL trainer)
REWARD_KEYS = ("final_reward", "avg_reward", "best_reward")


def new_model_id() -> str:
    return f"MDL-{uuid.uuid4().hex[:8]}"


def slug(text: str, fallback: str = "model") -> str:
    """A path- and name-safe form: lower case, runs of anything else become one dash."""
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return cleaned[:100] or fallback


def model_name_prefix(app_name: str) -> str:
    """A model's name is this followed by its version (the version is numbered in the database)."""
    return f"{slug(app_name, 'app')}-v"


# ---------------------------------------------------------------- layout in the models bucket

@dataclass(frozen=True)
class StagedArtifact:
    """One component's staged outputs and the folder they get inside the model."""

    task_id: str
    component_id: str
    name: str
    folder: str
    bucket: str
    prefix: str
    log: str | None

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def plan_artifacts(artifacts: Iterable[ComponentArtifacts]) -> list[StagedArtifact]:
    """Give each component a unique folder (its name; two components of one name are told apart by id).

    Raises ValueError for a prefix that is not an s3:// URL: such an event can never be stored."""
    items = list(artifacts)
    names = [slug(a.name, "component") for a in items]
    planned, used = [], set()
    for artifact, name in zip(items, names):
        folder = name if names.count(name) == 1 else f"{name}-{slug(artifact.component_id, 'c')}"
        base, n = folder, 2
        while folder in used:
            folder, n = f"{base}-{n}", n + 1
        used.add(folder)
        bucket, prefix = split_s3_url(artifact.prefix)
        if not prefix.strip("/"):
            raise ValueError(f"{artifact.prefix!r} names a whole bucket, not a component's output prefix")
        if not prefix.endswith("/"):
            prefix += "/"
        if artifact.log is not None:
            split_s3_url(artifact.log)
        planned.append(StagedArtifact(artifact.task_id, artifact.component_id, artifact.name, folder, bucket,
                                      prefix, artifact.log))
    return planned


def model_prefix(app_id: str, version: int) -> str:
    return f"{app_id}/{version}/"


def object_key(app_id: str, version: int, path: str) -> str:
    """<app_id>/<version>/<component folder>/<file>: the stored copy of one file."""
    return f"{model_prefix(app_id, version)}{path}"


def model_path(folder: str, staged_key: str, staged_prefix: str) -> str:
    relative = staged_key[len(staged_prefix):] if staged_key.startswith(staged_prefix) else staged_key
    return f"{folder}/{relative.lstrip('/')}"


# ---------------------------------------------------------------- a model's life

@dataclass(frozen=True)
class NewModel:
    """What a completed workload is recorded as: a pending model, numbered by the database with the
    App's next version when it is added."""

    model_id: str
    workload_id: str
    app_id: str
    app_name: str
    name_prefix: str
    workload: dict[str, Any]
    artifacts: list[StagedArtifact]
    metrics: dict[str, Any]


def model_of(completed: WorkloadCompleted) -> NewModel:
    """The pending model of a completed workload. Raises ValueError for an event that can never be
    stored (its workload is another one, or an artifact location is unusable)."""
    workload = completed.workload
    if workload.workload_id != completed.workload_id:
        raise ValueError(f"workload.completed for {completed.workload_id} carries workload {workload.workload_id}")
    try:
        artifacts = plan_artifacts(completed.artifacts)
    except ValueError as exc:
        raise ValueError(f"workload {completed.workload_id} lists an unusable artifact location: {exc}") from exc
    metrics = merge_metrics({a.folder: source.metrics for a, source in zip(artifacts, completed.artifacts)})
    return NewModel(model_id=new_model_id(), workload_id=completed.workload_id, app_id=workload.app_id,
                    app_name=workload.spec.name, name_prefix=model_name_prefix(workload.spec.name),
                    workload=workload.to_wire(), artifacts=artifacts, metrics=metrics)


@dataclass
class Model(Aggregate):
    """A model on its way into the models bucket: `pending` until every staged file is copied and
    verified, then `stored` (announced with model.stored). A store worker holds a lease on the model
    while it copies; a failed attempt keeps it pending, to be retried, and the first failure of an
    outage is announced with model.store_failed (the later ones of the same outage are only counted)."""

    model_id: str
    workload_id: str
    app_id: str
    version: int
    artifacts: list[StagedArtifact]
    status: ModelStatus = "pending"
    attempts: int = 0  # failed attempts
    last_error: str | None = None
    outage_reported: bool = False
    size_bytes: int = 0  # the stored model's totals (0 while pending)
    file_count: int = 0
    # files verified so far: path → staged source (a resumed copy skips them), and what they add up to
    verified: dict[str, str] = field(default_factory=dict)
    verified_bytes: int = 0
    retry_in: float | None = None  # seconds until the next attempt, once one failed
    trace_headers: dict[str, Any] | None = None  # the workload's remembered trace context

    @property
    def correlation_id(self) -> str:
        return self.workload_id

    def file_verified(self, path: str, source: str, size: int) -> None:
        self.verified[path] = source
        self.verified_bytes += size

    def mark_stored(self) -> None:
        """Every file is copied and verified: the model is stored, with the totals of its files."""
        if self.status != "pending":
            raise ValueError(f"model {self.model_id} is {self.status}, not pending")
        self.status, self.size_bytes, self.file_count = "stored", self.verified_bytes, len(self.verified)
        self.last_error, self.outage_reported, self.retry_in = None, False, None
        self.record("model.stored", ModelStored(workload_id=self.workload_id, model_id=self.model_id,
                                                app_id=self.app_id, version=self.version,
                                                size_bytes=self.size_bytes, files=self.file_count))

    def attempt_failed(self, reason: str, retry_in: float) -> None:
        """An attempt failed (the store is away, a copy did not verify): try again in `retry_in` seconds."""
        if self.status != "pending":
            raise ValueError(f"model {self.model_id} is {self.status}, not pending")
        self.attempts += 1
        self.last_error, self.retry_in = reason[:2000], retry_in
        if not self.outage_reported:  # the trainer's timeline shows "completed, model not stored yet"
            self.outage_reported = True
            self.record("model.store_failed", ModelStoreFailed(workload_id=self.workload_id, reason=reason,
                                                               attempt=self.attempts, will_retry=True))


# ---------------------------------------------------------------- metrics

def _scalar(value: Any) -> bool:
    return isinstance(value, (int, float, bool)) and not (isinstance(value, float) and not math.isfinite(value))


def merge_metrics(metrics_by_folder: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"components": {folder: metrics}, "summary": flat numbers} — the summary prefers the trainer.

    The trainer is the component reporting rewards; its scalar metrics win, other components fill in
    keys it does not report. A per-episode `rewards` list without final/avg figures yields them."""
    def is_trainer(metrics: dict[str, Any]) -> bool:
        return any(key in metrics for key in REWARD_KEYS + ("rewards",))

    ordered = sorted(metrics_by_folder.items(), key=lambda item: not is_trainer(item[1]))
    summary: dict[str, Any] = {}
    for _, metrics in ordered:
        derived = dict(metrics)
        curve = metrics.get("rewards")
        rewards = [r for r in curve if _scalar(r)] if isinstance(curve, list) else []
        if rewards:
            derived.setdefault("final_reward", rewards[-1])
            derived.setdefault("avg_reward", sum(rewards) / len(rewards))
            derived.setdefault("best_reward", max(rewards))
        for key, value in derived.items():
            if _scalar(value) and key not in summary:
                summary[key] = value
    return {"components": metrics_by_folder, "summary": summary}


def metric_value(metrics: dict[str, Any], name: str) -> float | None:
    """A summary metric by name, or one component's metric as `<component folder>.<key>`."""
    summary = metrics.get("summary") or {}
    value = summary.get(name)
    if value is None and "." in name:
        folder, key = name.split(".", 1)
        value = (metrics.get("components") or {}).get(folder, {}).get(key)
    if not _scalar(value):
        return None
    return float(value)


# ---------------------------------------------------------------- the verification gate (docs/spec.md §14.2)

class Gate(BaseModel):
    """A threshold the model must meet before an alias may point at it."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1, max_length=200)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one_bound_at_least(self) -> "Gate":
        if self.min is None and self.max is None:
            raise ValueError("a gate needs a bound: give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"gate min {self.min} is above max {self.max}")
        return self


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    observed: float | None
    message: str


def evaluate_gate(model_id: str, metrics: dict[str, Any], gate: Gate) -> GateOutcome:
    observed = metric_value(metrics, gate.metric)
    if observed is None:
        return GateOutcome(False, None, f"verification gate failed: model {model_id} does not report "
                                        f"metric '{gate.metric}'")
    if gate.min is not None and observed < gate.min:
        return GateOutcome(False, observed, f"verification gate failed: {gate.metric} = {observed:g} of model "
                                            f"{model_id} is below the required minimum {gate.min:g}")
    if gate.max is not None and observed > gate.max:
        return GateOutcome(False, observed, f"verification gate failed: {gate.metric} = {observed:g} of model "
                                            f"{model_id} is above the allowed maximum {gate.max:g}")
    return GateOutcome(True, observed, f"{gate.metric} = {observed:g} meets the gate")


# ---------------------------------------------------------------- aliases (docs/spec.md §14.2, hot swap)

def check_may_move_alias(app_id: str, owner: str | None, user: str, role: str | None) -> None:
    """Only the App's owner or an admin moves or rolls back its aliases (docs/architecture.md §2 Ownership);
    an App whose owner is None (the platform's, or one the builder has not announced yet) only an admin.
    Raises Forbidden (403) naming the owner."""
    ownership.check_may_change(f"app {app_id}", owner, user, role == "admin")


class GateFailed(Conflict):
    """The model does not meet the gate the move asked for (409 gate_failed)."""


@dataclass(frozen=True)
class AliasTarget:
    """A model as an alias move sees it."""

    model_id: str
    app_id: str
    version: int
    status: ModelStatus
    metrics: dict[str, Any]


@dataclass(frozen=True)
class AliasMove:
    """One move of an alias, as its history keeps it; `undoes` is the move a rollback reverts."""

    sequence: int
    action: Literal["move", "rollback"]
    from_model_id: str | None
    to_model_id: str
    moved_by: str
    gate: dict[str, Any] | None = None
    gate_observed: float | None = None
    undoes: int | None = None


@dataclass(frozen=True)
class AliasMoved:
    """What a move or a rollback did; the alias routes answer it as it is."""

    app_id: str
    alias: str
    model_id: str
    version: int
    previous_model_id: str | None
    changed: bool
    action: Literal["move", "rollback"]
    moved_by: str
    gate_observed: float | None = None


@dataclass(frozen=True)
class UndoableMove:
    sequence: int
    from_model_id: str | None


@dataclass
class Alias(Aggregate):
    """A name such as `production` pointing at one stored model of an App. Loaded locked, so moves of one
    alias (its first one too) happen one after the other; each move announces model.alias_moved with the
    number it takes in the App's history, by which consumers order the events they receive."""

    app_id: str
    name: str
    model_id: str | None  # None: the alias does not exist yet
    next_sequence: int  # the number its move takes (reserved when it is loaded locked)
    last_move: UndoableMove | None = None  # the newest move not undone, when loaded for a rollback
    moves: list[AliasMove] = field(default_factory=list)  # made in this unit, to be written

    @property
    def correlation_id(self) -> str:
        return self.app_id

    def move_to(self, model: AliasTarget, *, by: str, gate: Gate | None = None,
                expected_model_id: str | None = None) -> AliasMoved:
        """Point the alias at `model` if it is a stored model of this App, the alias still points where the
        mover expects, and the model meets the gate; moving it where it points changes nothing."""
        if model.app_id != self.app_id:
            raise Conflict(f"model {model.model_id} belongs to app {model.app_id}, not {self.app_id}",
                           code="other_app")
        if model.status != "stored":
            raise Conflict(f"model {model.model_id} is not stored yet; only a stored model can be promoted",
                           code="not_stored")
        if expected_model_id is not None and expected_model_id != self.model_id:
            raise Conflict(f"alias {self.name} points at {self.model_id or 'nothing'}, not {expected_model_id}: "
                           "it moved meanwhile; reload and retry", code="alias_moved", current_model_id=self.model_id)
        observed = None
        if gate is not None:
            outcome = evaluate_gate(model.model_id, model.metrics, gate)
            if not outcome.passed:
                raise GateFailed(f"{outcome.message}; alias {self.name} still points at {self.model_id or 'nothing'}",
                                 code="gate_failed", gate=gate.model_dump(), observed=outcome.observed)
            observed = outcome.observed
        change = AliasMoved(app_id=self.app_id, alias=self.name, model_id=model.model_id, version=model.version,
                             previous_model_id=self.model_id, changed=self.model_id != model.model_id,
                             action="move", moved_by=by, gate_observed=observed)
        if change.changed:
            self._moved(change, AliasMove(self.next_sequence, "move", self.model_id, model.model_id, by,
                                          gate=gate.model_dump() if gate else None, gate_observed=observed))
        return change

    def rollback_target(self) -> str:
        """The model the newest move not yet undone came from (repeated rollbacks walk back the history)."""
        if self.last_move is None or self.last_move.from_model_id is None:
            raise Conflict(f"alias {self.name} of app {self.app_id} has no earlier model to roll back to",
                           code="nothing_to_roll_back")
        return self.last_move.from_model_id

    def roll_back(self, model: AliasTarget, *, by: str) -> AliasMoved:
        """Undo the newest move not yet undone: back to `model`, the one it came from."""
        if self.last_move is None or model.model_id != self.rollback_target():
            raise ValueError(f"alias {self.name} rolls back to {self.rollback_target()}, not {model.model_id}")
        change = AliasMoved(app_id=self.app_id, alias=self.name, model_id=model.model_id, version=model.version,
                             previous_model_id=self.model_id, changed=True, action="rollback", moved_by=by)
        self._moved(change, AliasMove(self.next_sequence, "rollback", self.model_id, model.model_id, by,
                                      undoes=self.last_move.sequence))
        return change

    def _moved(self, change: AliasMoved, move: AliasMove) -> None:
        if self.moves:
            raise ValueError(f"alias {self.name} moves once per unit of work: its number is reserved on loading")
        self.model_id, self.last_move = move.to_model_id, None
        self.moves.append(move)
        self.record("model.alias_moved", ModelAliasMoved(
            app_id=change.app_id, alias=change.alias, model_id=change.model_id, version=change.version,
            previous_model_id=change.previous_model_id, action=change.action, moved_by=change.moved_by,
            sequence=move.sequence))


# ---------------------------------------------------------------- comparison (MD-06)

def compare(models: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """metric → {model_id: value}: every summary metric any of the models reports, side by side."""
    names: list[str] = []
    for model in models:
        for name in (model["metrics"].get("summary") or {}):
            if name not in names:
                names.append(name)
    return {name: {m["model_id"]: metric_value(m["metrics"], name) for m in models} for name in names}


# ---------------------------------------------------------------- integrity

def multipart_etag(part_md5s: list[bytes]) -> str:
    """The ETag an S3 server computes: md5 of the body for one part, md5 of the part md5s + -N for several."""
    if len(part_md5s) == 1:
        return part_md5s[0].hex()
    return f"{hashlib.md5(b''.join(part_md5s)).hexdigest()}-{len(part_md5s)}"


MAX_PARTS = 10_000  # S3's limit of parts per multipart upload


def part_size_for(size: int, preferred: int) -> int:
    """The preferred part size, grown (in whole MiB) when a file would need more than 10,000 parts."""
    mib = 1024 * 1024
    needed = -(-size // MAX_PARTS)
    return max(preferred, -(-needed // mib) * mib)


_MD5_ETAG = re.compile(r"^[0-9a-f]{32}(-\d+)?$")


def etag_is_md5(etag: str) -> bool:
    """Encrypted (SSE-KMS/C) objects have ETags that are not MD5s; those are verified by re-reading."""
    return bool(_MD5_ETAG.match(etag.strip('"').lower()))


def retry_delay(attempt: int, base: float, cap: float, *, jitter: float = 0.1,
                rng: random.Random | None = None) -> float:
    """Exponential backoff: base, 2·base, 4·base … capped, with ±jitter so replicas do not retry in step."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    spread = delay * jitter
    return max(0.0, delay + (rng or random).uniform(-spread, spread))


# ---------------------------------------------------------------- HTTP byte ranges (RFC 9110 §14)

class RangeNotSatisfiable(ValueError):
    pass


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


_RANGE = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One byte range of a representation of `size` bytes; None means "send it all".

    Several ranges are answered with the whole file (RFC 9110 lets a server ignore Range); a range
    that cannot be read or lies outside the file raises RangeNotSatisfiable (→ 416)."""
    if header is None or not header.strip():
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec:
        raise RangeNotSatisfiable(f"unsupported Range {header!r}: use bytes=start-end")
    if "," in spec:
        return None
    match = _RANGE.match(spec)
    if not match or match.groups() == ("", ""):
        raise RangeNotSatisfiable(f"malformed Range {header!r}: use bytes=start-end, bytes=start- or bytes=-suffix")
    first, last = match.groups()
    if first == "":  # suffix: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"Range {header!r} selects no bytes of a {size}-byte file")
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        raise RangeNotSatisfiable(f"Range {header!r} ends before it starts")
    if start >= size:
        raise RangeNotSatisfiable(f"Range {header!r} starts beyond the end of the {size}-byte file")
    return ByteRange(start, end)
