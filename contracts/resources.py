"""Resource quantities as the spec writes them ("64GB") and as the platform compares them."""
from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

# Decimal units follow the spec's "64GB"; binary and Kubernetes suffixes are accepted too.
_UNITS = {
    "B": 1,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
    "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40,
    "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40,
}
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
MAX_MEMORY_BYTES = 10**15  # 1 PB: anything larger is a typo, not a request


def parse_memory(text: str) -> int:
    """"64GB" -> 64_000_000_000 bytes; raises ValueError with a readable message."""
    if not isinstance(text, str):
        raise ValueError(f"memory must be a string like '64GB', got {text!r}")
    match = _MEMORY.match(text)
    if not match:
        raise ValueError(f"invalid memory value {text!r}: expected a number and a unit, e.g. '64GB'")
    number, unit = match.groups()
    factor = _UNITS.get(unit.upper() or "GB") if unit else None
    if factor is None:
        raise ValueError(f"invalid memory unit in {text!r}: use one of GB, MB, TB, GiB, Gi")
    value = int(float(number) * factor)
    if value > MAX_MEMORY_BYTES:
        raise ValueError(f"memory {text!r} is larger than the 1PB limit")
    return value


def format_memory(num_bytes: int) -> str:
    """Inverse of parse_memory for whole gigabytes (the spec's form), else megabytes."""
    if num_bytes % 10**9 == 0:
        return f"{num_bytes // 10**9}GB"
    return f"{max(1, round(num_bytes / 10**6))}MB"


def _validate_memory(text: str) -> str:
    parse_memory(text)
    return text


Memory = Annotated[str, AfterValidator(_validate_memory)]
GpuCount = Annotated[int, Field(ge=0, le=1024)]
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """"2h" -> 7200 seconds; "90s", "30m", "1d" likewise."""
    match = _DURATION.match(text or "")
    if not match:
        raise ValueError(f"invalid duration {text!r}: expected e.g. '90s', '30m', '2h' or '1d'")
    value = int(match.group(1)) * _SECONDS[match.group(2)]
    if value <= 0 or value > 30 * 86400:
        raise ValueError(f"duration {text!r} must be between 1s and 30d")
    return value


def _validate_duration(text: str) -> str:
    parse_duration(text)
    return text


Duration = Annotated[str, AfterValidator(_validate_duration)]


class Resources(BaseModel):
    """A component's resource request, exactly as docs/spec.md §2.2 writes it."""

    model_config = ConfigDict(extra="forbid")

    gpu_type: str = Field(min_length=1, max_length=64)
    gpu_count: GpuCount
    memory: Memory

    @property
    def memory_bytes(self) -> int:
        return parse_memory(self.memory)
