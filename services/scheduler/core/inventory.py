"""Node inventory (pure): what each node offers, read from a config file or Kubernetes Nodes.

A node has a status (Active: takes new work; Drain: keeps running work, takes nothing new;
Down: unreachable), GPU pools keyed by GPU type ({"A100": GpuPool(8, 80GB)}), memory in
bytes and CPU in cores. GPU device indices are numbered per node in declaration order of
the pools (8×A100 then 2×T4 -> A100 = 0..7, T4 = 8..9); the local runner turns them into
CUDA_VISIBLE_DEVICES.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Mapping

from contracts.resources import parse_memory

DEFAULT_NODES_FILE = Path(__file__).with_name("nodes.default.yaml")

K8S_GPU_RESOURCE = "nvidia.com/gpu"
K8S_GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
K8S_GPU_MEMORY_LABEL = "nvidia.com/gpu.memory"  # MiB, set by GPU feature discovery
K8S_GPU_TYPE_LABEL = "avatar.io/gpu-type"  # optional operator override of the type name


class NodeStatus(str, Enum):
    ACTIVE = "Active"
    DRAIN = "Drain"
    DOWN = "Down"


@dataclass(frozen=True)
class GpuPool:
    count: int
    memory_per_gpu_bytes: int


@dataclass(frozen=True)
class Node:
    name: str
    status: NodeStatus = NodeStatus.ACTIVE
    gpus: Mapping[str, GpuPool] = field(default_factory=dict)
    memory_bytes: int = 0
    cpu: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("node name must not be empty")
        for gpu_type, pool in self.gpus.items():
            if not gpu_type or "|" in gpu_type or "," in gpu_type or gpu_type.lower() == "any":
                raise ValueError(f"node {self.name}: invalid GPU type name {gpu_type!r}")
            if pool.count < 0 or pool.memory_per_gpu_bytes < 0:
                raise ValueError(f"node {self.name}: negative GPU figures for {gpu_type}")
        if self.memory_bytes < 0 or self.cpu < 0:
            raise ValueError(f"node {self.name}: negative memory or cpu")

    @property
    def gpu_total(self) -> int:
        return sum(pool.count for pool in self.gpus.values())

    def gpu_indices(self) -> dict[str, tuple[int, ...]]:
        """Device indices per GPU type, numbered in pool declaration order."""
        out: dict[str, tuple[int, ...]] = {}
        start = 0
        for gpu_type, pool in self.gpus.items():
            out[gpu_type] = tuple(range(start, start + pool.count))
            start += pool.count
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "gpus": {t: {"count": p.count, "memory_per_gpu_bytes": p.memory_per_gpu_bytes}
                     for t, p in self.gpus.items()},
            "memory_bytes": self.memory_bytes,
            "cpu": self.cpu,
            "labels": dict(self.labels),
        }


# ---------------------------------------------------------------- config file (local mode)

def _bytes(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_memory(value)
    raise ValueError(f"{what}: expected bytes (int) or a size like '80GB', got {value!r}")


def node_from_dict(data: Mapping[str, Any]) -> Node:
    """One node from config: memory as '1024GB' or memory_bytes; gpus {type: {count, memory}}."""
    name = str(data.get("name") or "")
    gpus: dict[str, GpuPool] = {}
    for gpu_type, pool in (data.get("gpus") or {}).items():
        if isinstance(pool, int):
            pool = {"count": pool}
        mem = pool.get("memory_per_gpu_bytes", pool.get("memory", 0))
        gpus[str(gpu_type)] = GpuPool(int(pool.get("count", 0)), _bytes(mem, f"{name}.gpus.{gpu_type}.memory"))
    memory = data.get("memory_bytes", data.get("memory", 0))
    return Node(
        name=name,
        status=NodeStatus(data.get("status", NodeStatus.ACTIVE.value)),
        gpus=gpus,
        memory_bytes=_bytes(memory, f"{name}.memory"),
        cpu=float(data.get("cpu", 0)),
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
    )


def nodes_from_config(data: Mapping[str, Any] | list) -> list[Node]:
    items = data.get("nodes", []) if isinstance(data, Mapping) else data
    nodes = [node_from_dict(item) for item in items]
    names = [n.name for n in nodes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate node names in inventory: {duplicates}")
    return nodes


def load_nodes_file(path: str | Path = DEFAULT_NODES_FILE) -> list[Node]:
    """Read a YAML (.yaml/.yml) or JSON inventory file: {"nodes": [...]}."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml  # local import: only the file loader needs it

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    return nodes_from_config(data or {})


# ---------------------------------------------------------------- Kubernetes Node objects

_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")
_SUFFIX = {
    "": Decimal(1), "m": Decimal("0.001"), "k": Decimal(10**3), "M": Decimal(10**6),
    "G": Decimal(10**9), "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse_quantity(text: str | int | float) -> Decimal:
    """Kubernetes resource quantity: '503Gi', '64', '63500m', '1e3', '128974848Ki'."""
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"invalid Kubernetes quantity {text!r}")
    number, suffix = match.groups()
    try:
        return Decimal(number) * _SUFFIX[suffix]
    except InvalidOperation as exc:
        raise ValueError(f"invalid Kubernetes quantity {text!r}") from exc


_VENDOR_WORDS = {"NVIDIA", "TESLA", "GEFORCE", "QUADRO"}
_GPU_MEMORY_IN_NAME = re.compile(r"(\d+)\s*GB", re.IGNORECASE)


def gpu_type_from_product(product: str) -> str:
    """'NVIDIA-A100-SXM4-80GB' -> 'A100'; 'Tesla-V100-SXM2-32GB' -> 'V100';
    'NVIDIA-GeForce-RTX-4090' -> 'RTX4090'. Unknown shapes keep their first word."""
    words = [w for w in re.split(r"[-_\s]+", product.strip()) if w]
    words = [w for w in words if w.upper() not in _VENDOR_WORDS] or words
    if not words:
        return "unknown"
    first = words[0].upper()
    if first in ("RTX", "GTX") and len(words) > 1:
        return first + words[1].upper()
    return first


def _memory_from_product(product: str) -> int:
    match = _GPU_MEMORY_IN_NAME.search(product)
    return int(match.group(1)) * 10**9 if match else 0


def node_from_k8s(obj: Mapping[str, Any]) -> Node:
    """A Node object as the API returns it (camelCase dict) -> inventory Node.

    Status: Ready condition not True -> Down; spec.unschedulable (cordon) -> Drain.
    GPUs: allocatable nvidia.com/gpu of the type named by avatar.io/gpu-type, else the
    nvidia.com/gpu.product label; memory per GPU from nvidia.com/gpu.memory (MiB), else
    the '80GB' in the product name, else 0 (unknown: never matches a minimum-memory request).
    """
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    allocatable = status.get("allocatable") or {}

    ready = any(c.get("type") == "Ready" and c.get("status") == "True"
                for c in status.get("conditions") or [])
    if not ready:
        node_status = NodeStatus.DOWN
    elif spec.get("unschedulable"):
        node_status = NodeStatus.DRAIN
    else:
        node_status = NodeStatus.ACTIVE

    gpus: dict[str, GpuPool] = {}
    gpu_count = int(parse_quantity(allocatable.get(K8S_GPU_RESOURCE, 0)))
    if gpu_count > 0:
        product = labels.get(K8S_GPU_PRODUCT_LABEL, "")
        gpu_type = labels.get(K8S_GPU_TYPE_LABEL) or (gpu_type_from_product(product) if product else "unknown")
        if K8S_GPU_MEMORY_LABEL in labels:
            per_gpu = int(parse_quantity(labels[K8S_GPU_MEMORY_LABEL])) * 2**20
        else:
            per_gpu = _memory_from_product(product)
        gpus[gpu_type] = GpuPool(gpu_count, per_gpu)

    return Node(
        name=str(meta.get("name") or ""),
        status=node_status,
        gpus=gpus,
        memory_bytes=int(parse_quantity(allocatable.get("memory", 0))),
        cpu=float(parse_quantity(allocatable.get("cpu", 0))),
        labels=labels,
    )


def nodes_from_k8s(items: Iterable[Mapping[str, Any]]) -> list[Node]:
    return [node_from_k8s(item) for item in items]
