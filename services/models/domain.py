"""The rules of the model store, free of I/O: naming, layout, metrics, the promotion gate, byte ranges."""
from __future__ import annotations

import hashlib
import math
import random
import re
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events import ComponentArtifacts
from services.kit.objectstore import split_s3_url

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


# ---------------------------------------------------------------- the verification gate (seed 003)

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
