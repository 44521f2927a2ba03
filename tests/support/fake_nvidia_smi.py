"""A stand-in for nvidia-smi (an external tool) on machines without GPUs: an executable put first
on PATH. It answers the two queries the GPU probe makes, like a driver with `gpus` GPUs would:
GPU i is `UUIDS[i]`, `utilization(i)` percent busy; the compute apps are the live processes that a
runner gave GPUs (CUDA_VISIBLE_DEVICES set, AVATAR_RUN_ID tagged), each holding `app_memory_mib`
on every GPU it sees."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

UUIDS = [f"GPU-{i:08x}-1111-2222-3333-{i:012x}" for i in range(8)]

_SCRIPT = """#!{python}
import os, sys, time

sys.stdout.write({raw!r} * {repeat})
time.sleep({sleep_s})
if {exit_code}:
    print("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")
    sys.exit({exit_code})
query = " ".join(sys.argv[1:])
uuids = {uuids!r}
if "--query-gpu=" in query:
    for i in range({gpus}):
        print(f"{{i}}, {{uuids[i]}}, NVIDIA A100-SXM4-80GB, 81920, {{1000 + i}}, {{{utilization}}}")
elif "--query-compute-apps=" in query:
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{{pid}}/environ", "rb") as f:
                env = dict(item.split(b"=", 1) for item in f.read().split(b"\\0") if b"=" in item)
        except OSError:
            continue
        visible = env.get(b"CUDA_VISIBLE_DEVICES", b"").decode()
        if {processes} and visible and b"AVATAR_RUN_ID" in env:
            for index in visible.split(","):
                print(f"{{pid}}, {{uuids[int(index)]}}, {app_memory_mib}")
else:
    sys.exit(2)
"""


def install(directory: Path, *, gpus: int = 2, utilization: str = "30 + 10 * i", app_memory_mib: int = 512,
            processes: bool = True, exit_code: int = 0, sleep_s: float = 0.0, raw: str = "", repeat: int = 1) -> Path:
    """Write `nvidia-smi` into directory; `utilization` is a Python expression of the GPU index i,
    `processes=False` lists no compute apps, `raw` is written first (`repeat` times) to make
    garbage or flooding output."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "nvidia-smi"
    path.write_text(_SCRIPT.format(python=sys.executable, raw=raw, repeat=repeat, sleep_s=sleep_s,
                                   exit_code=exit_code, uuids=UUIDS, gpus=gpus, utilization=utilization,
                                   app_memory_mib=app_memory_mib, processes=processes))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def first_on_path(monkeypatch, directory: Path) -> None:
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', '')}")
