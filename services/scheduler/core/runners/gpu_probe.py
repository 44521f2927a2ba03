"""GPU usage from nvidia-smi, for the local runner.

Per GPU: utilisation and memory; per process: the GPU memory it holds. A run's share is found by
its processes' pids (GPU memory) and by the GPU indices it was given in CUDA_VISIBLE_DEVICES
(utilisation, GPUs in use). Parsing and attribution are pure; NvidiaSmi.sample() runs the two
queries (with a timeout, output bounded) and gives None whenever nvidia-smi is absent, fails or
says something this parser does not understand: "used" is then unknown, never the allocation.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from dataclasses import dataclass
from typing import Collection, Protocol, Sequence

from .base import GpuUsage

log = logging.getLogger(__name__)

GPU_QUERY = ("--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu", "--format=csv,noheader,nounits")
APPS_QUERY = ("--query-compute-apps=pid,gpu_uuid,used_memory", "--format=csv,noheader,nounits")
MIB = 1024 * 1024
_NO_PROCESSES = "no running processes found"


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_total_bytes: int | None
    memory_used_bytes: int | None
    utilization: int | None  # percent busy over nvidia-smi's last sample period


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    gpu_uuid: str
    memory_bytes: int | None


@dataclass(frozen=True)
class GpuSample:
    gpus: tuple[Gpu, ...]
    processes: tuple[GpuProcess, ...] | None  # None: the per-process query failed


class GpuProbe(Protocol):
    async def sample(self) -> GpuSample | None: ...


class Unparsable(ValueError):
    pass


def _unknown(field: str) -> bool:
    # "[N/A]", "[Not Supported]", "[Unknown Error]", "[Insufficient Permissions]", or bare "N/A"
    return field in ("N/A", "") or (field.startswith("[") and field.endswith("]"))


def _count(field: str) -> int | None:
    if _unknown(field):
        return None
    try:
        value = int(field)
    except ValueError:
        raise Unparsable(field) from None
    if value < 0:
        raise Unparsable(field)
    return value


def _mib(field: str) -> int | None:
    value = _count(field)
    return None if value is None else value * MIB


def _identity(field: str) -> str:
    if _unknown(field):
        raise Unparsable(field)
    return field


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def parse_gpus(text: str) -> tuple[Gpu, ...] | None:
    """`--query-gpu=index,uuid,name,memory.total,memory.used,utilization.gpu` (csv, noheader,
    nounits: MiB and percent). None unless every line is understood and there is at least one."""
    gpus = []
    try:
        for line in _lines(text):
            head = line.split(",", 2)
            fields = [*head[:2], *head[-1].rsplit(",", 3)] if len(head) == 3 else []
            if len(fields) != 6:
                raise Unparsable(line)
            index, uuid, name, total, used, utilization = (f.strip() for f in fields)  # a name may hold commas
            if _count(index) is None:
                raise Unparsable(line)
            gpus.append(Gpu(int(index), _identity(uuid), name, _mib(total), _mib(used), _count(utilization)))
    except Unparsable:
        return None
    return tuple(gpus) or None


def parse_processes(text: str) -> tuple[GpuProcess, ...] | None:
    """`--query-compute-apps=pid,gpu_uuid,used_memory` (csv, noheader, nounits: MiB). Empty when
    no process uses a GPU; None unless every line is understood."""
    processes = []
    try:
        for line in _lines(text):
            if line.lower().startswith(_NO_PROCESSES):
                continue
            fields = [f.strip() for f in line.split(",")]
            if len(fields) != 3 or _count(fields[0]) is None:
                raise Unparsable(line)
            processes.append(GpuProcess(int(fields[0]), _identity(fields[1]), _mib(fields[2])))
    except Unparsable:
        return None
    return tuple(processes)


def attribute(sample: GpuSample, pids: Collection[int], gpu_indices: Sequence[int]) -> GpuUsage | None:
    """A run's GPU usage: the GPU memory its processes hold, the mean utilisation and the number
    in use of the GPUs it was given. None when one of its GPUs is not in the sample (nothing
    can be said about it); a figure is None when nvidia-smi could not give it."""
    by_index = {gpu.index: gpu for gpu in sample.gpus}
    if any(index not in by_index for index in gpu_indices):
        return None
    mine = None if sample.processes is None else [p for p in sample.processes if p.pid in pids]
    memory = None
    if mine is not None and all(p.memory_bytes is not None for p in mine):
        memory = sum(p.memory_bytes or 0 for p in mine)
    given = [by_index[index] for index in gpu_indices]
    utilization = None
    if given and all(g.utilization is not None for g in given):
        utilization = round(sum(g.utilization or 0 for g in given) / len(given), 1)
    in_use = [_in_use(gpu, mine) for gpu in given]
    busy = None if any(u is None for u in in_use) else sum(1 for u in in_use if u)
    return GpuUsage(memory_bytes=memory, utilization=utilization, busy=busy)


def _in_use(gpu: Gpu, mine: list[GpuProcess] | None) -> bool | None:
    """A process of the run holds memory on it, or it is busy (the run's processes may not be
    visible to nvidia-smi, e.g. in another pid namespace; the GPU is the run's alone)."""
    if mine is not None and any(p.gpu_uuid == gpu.uuid for p in mine):
        return True
    if gpu.utilization is not None and gpu.utilization > 0:
        return True
    if mine is None and gpu.utilization is None:
        return None
    return False


class NvidiaSmi:
    """Samples the GPUs of this machine with nvidia-smi (found on PATH at each sample)."""

    def __init__(self, *, executable: str = "nvidia-smi", timeout_seconds: float = 5.0,
                 max_output_bytes: int = 1 << 20) -> None:
        self.executable = executable
        self.timeout_seconds = timeout_seconds
        self.max_output_bytes = max_output_bytes

    def available(self) -> bool:
        return shutil.which(self.executable) is not None

    async def sample(self) -> GpuSample | None:
        path = shutil.which(self.executable)
        if path is None:
            return None
        gpus = await self._query(path, GPU_QUERY)
        gpus = parse_gpus(gpus) if gpus is not None else None
        if gpus is None:
            return None
        processes = await self._query(path, APPS_QUERY)
        return GpuSample(gpus, parse_processes(processes) if processes is not None else None)

    async def _query(self, path: str, arguments: Sequence[str]) -> str | None:
        """The standard output of one successful query, or None (failed, too slow, too long)."""
        try:
            proc = await asyncio.create_subprocess_exec(
                path, *arguments, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL)
        except OSError as exc:
            log.debug("cannot run %s: %s", path, exc)
            return None
        try:
            async with asyncio.timeout(self.timeout_seconds):
                output = await self._read(proc.stdout)
                if output is None:
                    log.debug("%s %s: more than %d bytes of output", path, arguments[0], self.max_output_bytes)
                    return None
                code = await proc.wait()
        except TimeoutError:
            log.debug("%s did not answer within %.1fs", path, self.timeout_seconds)
            return None
        finally:
            if proc.returncode is None:  # too slow, too long, or we were cancelled: do not leave it behind
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if code != 0:
            log.debug("%s %s: exit code %s", path, arguments[0], code)
            return None
        return output.decode(errors="replace")

    async def _read(self, stream: asyncio.StreamReader | None) -> bytes | None:
        """Everything up to EOF, or None past max_output_bytes."""
        assert stream is not None
        chunks, size = [], 0
        while chunk := await stream.read(65536):
            size += len(chunk)
            if size > self.max_output_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
